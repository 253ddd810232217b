"""p2p-serve latency as a user meets it: requests through a live server; prints JSON.

  python benchmarks/serve.py --json                   # a fresh paper-size run (256 px, ngf 64)
  python benchmarks/serve.py --workdir=runs/demo --json

Starts `python -m p2p.serve` on a free port and sends, through gradio_client, --requests sketch
requests of one model-size map (the sketch tab's "Generate") and --requests uploads of a
1200x1200 map (the maps dataset's full tile), after --warmup of each; reports p50/p95/mean
seconds. Then, with the server stopped, times the same translations in this process
(p2p.translate_image alone), so the difference is the page's own cost (HTTP, queue, PNG
encoding). Without --workdir it trains a fresh run for one step at the paper's size first:
latency does not depend on the weights.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def paper_run(folder: Path) -> Path:
  """A 256 px, ngf 64 run (the paper's generator) trained one step on synthetic maps."""
  from p2p.config import default_config, train_config
  from p2p.data import synthetic
  from p2p.train.loop import train_and_evaluate
  data = synthetic.write_dataset(folder / "maps", train=2, val=2, seed=0)
  c = default_config()
  c.data.data_dir, c.max_steps, c.eval_examples, c.num_sample_images = str(data), 1, 1, 1
  train_and_evaluate(train_config(c), folder / "run", progress=False)
  return folder / "run"


def start(workdir: Path, max_pixels: int) -> tuple[subprocess.Popen, str, list[str]]:
  """A p2p-serve subprocess on a free port, and its URL once it serves."""
  lines: list[str] = []
  proc = subprocess.Popen([sys.executable, "-m", "p2p.serve", f"--workdir={workdir}",
                           "--port=0", f"--max_pixels={max_pixels}", "--examples=0"],
                          cwd=ROOT, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          env={**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"})
  threading.Thread(target=lambda: lines.extend(line.rstrip() for line in proc.stdout),
                   daemon=True).start()
  deadline = time.monotonic() + 600
  while time.monotonic() < deadline and proc.poll() is None:
    for line in list(lines):
      if line.startswith("p2p-serve: http"):
        return proc, line.split()[1], lines
    time.sleep(0.2)
  proc.kill()
  raise SystemExit("p2p-serve did not start:\n" + "\n".join(lines[-20:]))


def stats(seconds: list[float]) -> dict[str, float]:
  """p50, p95 and mean of a list of latencies, in seconds."""
  values = np.asarray(seconds)
  return {"p50_s": round(float(np.percentile(values, 50)), 4),
          "p95_s": round(float(np.percentile(values, 95)), 4),
          "mean_s": round(float(values.mean()), 4), "n": len(values)}


def timed(call, warmup: int, requests: int) -> list[float]:
  """Latencies of `requests` calls after `warmup` untimed ones."""
  for _ in range(warmup):
    call()
  out = []
  for _ in range(requests):
    start_time = time.perf_counter()
    call()
    out.append(time.perf_counter() - start_time)
  return out


def inputs(folder: Path, size: int) -> tuple[Path, Path]:
  """A model-size synthetic map and a 1200x1200 one (PNG), as users would send them."""
  from PIL import Image
  from p2p.data.synthetic import render_pair
  small = render_pair(np.random.default_rng(1), size)[:, size:]
  big = render_pair(np.random.default_rng(2), 1200)[:, 1200:]
  Image.fromarray(small).save(folder / "sketch.png")
  Image.fromarray(big).save(folder / "upload.png")
  return folder / "sketch.png", folder / "upload.png"


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--workdir", default="", help="run to serve (default: a fresh 256 px run)")
  parser.add_argument("--requests", type=int, default=20)
  parser.add_argument("--warmup", type=int, default=2)
  parser.add_argument("--json", action="store_true", help="print only the JSON line")
  args = parser.parse_args()
  from gradio_client import Client, handle_file
  import p2p
  from p2p.hardware import machine
  folder = Path(tempfile.mkdtemp(prefix="p2p-bench-serve-"))
  workdir = Path(args.workdir) if args.workdir else paper_run(folder)
  size = p2p.load(workdir).image_size
  sketch, upload = inputs(folder, size)
  proc, url, log = start(workdir, 4_000_000)
  try:
    client = Client(url, verbose=False)
    canvas = {"background": handle_file(sketch), "layers": [], "composite": handle_file(sketch)}
    server = {
        "sketch": stats(timed(lambda: client.predict(canvas, api_name="/sketch"),
                              args.warmup, args.requests)),
        "upload_1200": stats(timed(lambda: client.predict(handle_file(upload),
                                                          api_name="/translate"),
                                   args.warmup, args.requests))}
  finally:
    proc.terminate()
    proc.wait(timeout=30)
  from p2p.serve.engine import Engine
  engine = Engine(p2p.load(workdir))
  model = {name: stats(timed(lambda image=image: engine.translate(image), args.warmup,
                             args.requests))
           for name, image in (("sketch", engine.read(sketch)),
                               ("upload_1200", engine.read(upload)))}
  import jax
  from p2p.data.transforms import tile_starts
  result = {"benchmark": "serve", "workdir": str(workdir), "image_size": size,
            "tiles_1200": len(tile_starts(1200, size, "cover", size - size // 2)) ** 2,
            "server": server, "translate_only": model,
            **machine(), "backend": jax.default_backend(), "device_kind": jax.devices()[0].device_kind,
            "jax": jax.__version__}
  if not args.json:
    for key, value in result.items():
      print(f"{key:>16}: {value}")
  print(json.dumps(result))


if __name__ == "__main__":
  main()
