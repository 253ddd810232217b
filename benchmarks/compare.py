"""p2p against the PyTorch pix2pix reference, side by side and interleaved; one JSON line.

  pip install -e '.[bench]'
  python benchmarks/compare.py --json                       # train b1, b4; infer 256; tiled 1200
  python benchmarks/compare.py --modes=train:1 --p2p_dtypes=auto,float32,bfloat16

Each implementation runs in its own worker process (one process tree, each worker with every
core), set up and warmed up once; then the parent runs --rounds rounds in which every worker in
turn (order rotated per round) times --steps calls, so that machine drift hits all alike. The
medians give img/s; `ratio` is p2p's fastest over PyTorch's fastest (the better of float32 and
bf16 autocast, NCHW unless --torch_channels_last). p2p runs compute_dtype=auto (the path this
machine picks) unless --p2p_dtypes says otherwise. Modes: train:B (one full iteration at batch
B, 256 px, 70x70 D), infer:1 (G eval-mode forward, 256 px), tiled:1 (a 1200x1200 translate in
81 blended 256 px tiles). Peak RSS is each worker's own high-water mark.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PREFIX = "@@ "  # a worker's replies on stdout; anything else it prints is passed through


# ---- workers -------------------------------------------------------------------------------

def _p2p_runner(dtype: str, mode: str, batch: int, size: int, image: int):
  """(run, info) for p2p: a call of the jitted train step, a forward, or a tiled translate."""
  import dataclasses

  import jax
  import numpy as np

  from p2p.config import default_config, train_config
  from p2p.infer.sample import Generator, sample, translate_image
  from p2p.ops import autotune
  from p2p.train import hostmem, parallel
  from p2p.train.state import abstract_state, build_networks, create_train_state
  from p2p.train.step import compile_step, precompile
  c = default_config()
  c.data.image_size = c.data.load_size = c.data.patch_size = size
  c.batch_size, c.compute_dtype = batch, dtype
  config = train_config(c)
  choice = autotune.resolve(config.compute_dtype)
  mesh = parallel.make_mesh()
  nets = build_networks(config, steps_per_epoch=1000)
  info = {"dtype": choice.dtype, "choice": choice.reason}
  if mode == "train":
    abstract = parallel.with_sharding(abstract_state(nets, size), parallel.replicated(mesh))
    step = precompile(compile_step(nets, config, mesh), abstract, config, mesh)
    state = create_train_state(nets, config, mesh)
    hostmem.trim_heap()
    x = np.random.default_rng(0).uniform(-1, 1, (batch, size, size, 3)).astype(np.float32)
    data = parallel.global_batch({"input": x, "target": np.tanh(2 * x)}, mesh)
    holder = [state]

    def run():
      holder[0], metrics = step(holder[0], data)
      jax.block_until_ready(metrics)
    return run, info
  x0 = jax.numpy.zeros((1, size, size, 3))  # G alone: no D, no optimizer state (as PyTorch)
  variables = jax.jit(lambda key: nets.generator.init({"params": key, "dropout": key}, x0,
                                                      train=False))(jax.random.key(0))
  gen = Generator(nets.generator, variables, size,
                  data=dataclasses.replace(config.data, a_dtype="uint8", b_dtype="uint8"))
  rng = np.random.default_rng(0)
  if mode == "infer":
    x = rng.uniform(-1, 1, (batch, size, size, 3)).astype(np.float32)
    return lambda: sample(gen, x, norm="running"), info
  picture = rng.integers(0, 256, (image, image, 3), dtype=np.uint8)
  return lambda: translate_image(gen, picture, norm="running"), info


def _torch_runner(dtype: str, mode: str, batch: int, size: int, image: int,
                  channels_last: bool):
  """(run, info) for the PyTorch reference."""
  import numpy as np
  import torch
  sys.path.insert(0, str(ROOT / "benchmarks"))
  from torch_reference import Pix2Pix
  model = Pix2Pix(dtype, channels_last)
  info = {"dtype": dtype, "channels_last": channels_last, "torch": torch.__version__,
          "threads": torch.get_num_threads(),
          "cpu_capability": torch.backends.cpu.get_cpu_capability()}
  if mode == "train":
    a, b = model.batch(batch, size)
    return lambda: model.step(a, b), info
  if mode == "infer":
    a, _ = model.batch(batch, size)
    return lambda: model.forward(a), info
  picture = np.random.default_rng(0).uniform(-1, 1, (image, image, 3)).astype(np.float32)
  return lambda: model.translate(picture), info


def worker(impl: str) -> None:
  """Serves the parent: setup, then timed runs, then exit with the peak RSS."""
  if impl == "p2p":
    from p2p import cli
    cli.use_hugepage_malloc()  # as p2p-train does (re-execs this worker once)
  reply = lambda obj: print(PREFIX + json.dumps(obj), flush=True)
  run = None
  for line in sys.stdin:
    cmd = json.loads(line)
    if cmd["op"] == "setup":
      start = time.perf_counter()
      args = (cmd["dtype"], cmd["mode"], cmd["batch"], cmd["size"], cmd["image"])
      run, info = (_p2p_runner(*args) if impl == "p2p"
                   else _torch_runner(*args, cmd["channels_last"]))
      for _ in range(cmd["warmup"]):
        run()
      reply({**info, "setup_s": round(time.perf_counter() - start, 2)})
    elif cmd["op"] == "run":
      times = []
      for _ in range(cmd["n"]):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
      reply({"times": times})
    else:
      reply({"peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)})
      return


class Worker:
  """A worker process, driven over its stdin/stdout."""

  def __init__(self, impl: str, dtype: str, channels_last: bool = False):
    self.impl, self.dtype, self.channels_last = impl, dtype, channels_last
    self.name = f"{impl} {dtype}" + (" channels_last" if channels_last else "")
    self.proc = subprocess.Popen([sys.executable, __file__, "--worker", impl], cwd=ROOT,
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                 env={**os.environ, "PYTHONPATH": str(ROOT)})
    self.times: list[float] = []
    self.info: dict = {}

  def ask(self, **cmd) -> dict:
    """Sends one command; returns the reply."""
    self.proc.stdin.write(json.dumps(cmd) + "\n")
    self.proc.stdin.flush()
    for line in self.proc.stdout:
      if line.startswith(PREFIX):
        return json.loads(line[len(PREFIX):])
      sys.stderr.write(line)
    raise RuntimeError(f"worker {self.name} ended (exit code {self.proc.wait()})")

  def close(self) -> float:
    """Ends the worker; its peak RSS in MiB."""
    peak = self.ask(op="exit")["peak_rss_mib"]
    self.proc.wait()
    return peak


# ---- the comparison ------------------------------------------------------------------------

def compare_mode(mode: str, batch: int, args: argparse.Namespace) -> dict:
  """One mode: workers set up, interleaved rounds, per-implementation medians and the ratio."""
  workers = ([Worker("p2p", d) for d in args.p2p_dtypes.split(",")]
             + [Worker("torch", d, args.torch_channels_last) for d in args.torch_dtypes.split(",")])
  try:
    for w in workers:
      w.info = w.ask(op="setup", dtype=w.dtype, mode=mode, batch=batch, size=256,
                     image=args.image, channels_last=w.channels_last, warmup=args.warmup)
    for r in range(args.rounds):
      for w in workers[r % len(workers):] + workers[:r % len(workers)]:
        w.times += w.ask(op="run", n=args.steps)["times"]
  finally:
    peaks = {}
    for w in workers:
      try:
        peaks[w.name] = w.close()
      except (RuntimeError, BrokenPipeError):
        w.proc.kill()
  images = 1 if mode == "tiled" else batch
  rows = {w.name: {**w.info, "img_per_s": round(images / statistics.median(w.times), 4),
                   "s_median": round(statistics.median(w.times), 4),
                   "s_min": round(min(w.times), 4), "calls": len(w.times),
                   "peak_rss_mib": peaks.get(w.name)} for w in workers}
  best = {impl: max((n for n in rows if n.startswith(impl)), key=lambda n: rows[n]["img_per_s"])
          for impl in ("p2p", "torch")}
  p2p, torch = rows[best["p2p"]], rows[best["torch"]]
  return {"mode": mode, "batch": batch, "results": rows, "p2p_fastest": best["p2p"],
          "torch_fastest": best["torch"], "ratio": round(p2p["img_per_s"] / torch["img_per_s"], 3),
          "rss_ratio": round(p2p["peak_rss_mib"] / torch["peak_rss_mib"], 3)
          if p2p["peak_rss_mib"] and torch["peak_rss_mib"] else None}


def main() -> None:
  """Parses flags; runs each mode (or serves as a worker); prints one JSON line."""
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--worker", choices=("p2p", "torch"), help=argparse.SUPPRESS)
  p.add_argument("--modes", default="train:1,train:4,infer:1,tiled:1",
                 help="comma-separated mode:batch (train, infer, tiled)")
  p.add_argument("--p2p_dtypes", default="auto", help="compute_dtype per p2p worker")
  p.add_argument("--torch_dtypes", default="float32,bfloat16",
                 help="float32 and/or bfloat16 (autocast)")
  p.add_argument("--torch_channels_last", action="store_true")
  p.add_argument("--image", type=int, default=1200, help="tiled mode's square side, px")
  p.add_argument("--warmup", type=int, default=2)
  p.add_argument("--rounds", type=int, default=5)
  p.add_argument("--steps", type=int, default=2, help="timed calls per worker per round")
  p.add_argument("--json", action="store_true", help="print only the JSON line")
  args = p.parse_args()
  if args.worker:
    worker(args.worker)
    return
  sys.path.insert(0, str(ROOT))
  from p2p.hardware import machine
  start = time.perf_counter()
  modes = []
  for item in args.modes.split(","):
    mode, batch = item.split(":")
    modes.append(compare_mode(mode, int(batch), args))
    if not args.json:
      m = modes[-1]
      print(f"{mode} b{batch}: p2p {m['results'][m['p2p_fastest']]['img_per_s']} img/s "
            f"({m['p2p_fastest']}), PyTorch {m['results'][m['torch_fastest']]['img_per_s']} "
            f"({m['torch_fastest']}): ratio {m['ratio']}", file=sys.stderr)
  print(json.dumps({"benchmark": "compare", **machine(), "threads": len(os.sched_getaffinity(0)),
                    "rounds": args.rounds, "steps": args.steps, "modes": modes,
                    "wall_s": round(time.perf_counter() - start, 1)}))


if __name__ == "__main__":
  main()
