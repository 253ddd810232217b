"""Training input pipeline throughput (patches + jitter) on a dataset folder; prints JSON.

  python benchmarks/input_pipeline.py --data_dir=../shared/data/maps --json
"""

from __future__ import annotations

import argparse
import json
import os
import time

from absl import flags

from p2p.config import DataConfig
from p2p.data.pipeline import make_iterator, make_split, train_dataset
from p2p.hardware import machine


def measure(cfg: DataConfig, batch_size: int, images: int, warmup: int = 5) -> dict:
  """Images per second after warm-up (worker start-up excluded, reported apart)."""
  start = time.perf_counter()
  split = make_split(cfg, "train")
  opened = time.perf_counter()
  it = make_iterator(cfg, train_dataset(cfg, split, batch_size=batch_size, seed=0))
  for _ in range(warmup):
    next(it)
  warm = time.perf_counter()
  steps = max(images // batch_size, 1)
  for _ in range(steps):
    batch = next(it)
  elapsed = time.perf_counter() - warm
  it.close()
  assert batch["input"].shape[0] == batch_size
  return {"worker_count": cfg.worker_count, "num_threads": cfg.num_threads,
          "images_per_s": round(steps * batch_size / elapsed, 1),
          "open_split_s": round(opened - start, 2), "first_batches_s": round(warm - opened, 2)}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--data_dir", default="../shared/data/maps")
  parser.add_argument("--workers", default="0,2", help="comma-separated worker counts")
  parser.add_argument("--num_threads", type=int, default=2)
  parser.add_argument("--batch_size", type=int, default=1)
  parser.add_argument("--images", type=int, default=400, help="images timed per setting")
  parser.add_argument("--preprocess", default="patches", choices=("patches", "resize"))
  parser.add_argument("--json", action="store_true", help="print only the JSON line")
  args = parser.parse_args()
  flags.FLAGS.mark_as_parsed()  # grain worker processes read absl flags
  results = []
  for workers in (int(w) for w in args.workers.split(",")):
    cfg = DataConfig(data_dir=args.data_dir, preprocess=args.preprocess, worker_count=workers,
                     num_threads=args.num_threads, verify_images=False)
    results.append(measure(cfg, args.batch_size, args.images))
    if not args.json:
      print(results[-1])
  print(json.dumps({
      "benchmark": "input_pipeline", "data_dir": os.path.abspath(args.data_dir),
      "preprocess": args.preprocess, "jitter": True, "batch_size": args.batch_size,
      **machine(),
      "images_per_s": {str(r["worker_count"]): r["images_per_s"] for r in results},
      "results": results}))


if __name__ == "__main__":
  main()
