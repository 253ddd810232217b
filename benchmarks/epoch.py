"""Whole training loop (Grain pipeline + step + metrics logging) vs the bare step; prints JSON.

  python benchmarks/epoch.py --data_dir=../shared/data/maps --json

Runs the real loop (`p2p.train.train_and_evaluate`, as `python -m p2p.main` does) on the
dataset for --warmup + --steps steps and times the last --steps; then, in the same process,
times the bare jitted step on one fixed batch of the same shape (benchmarks/train_step.py).
loop_fraction = loop img/s / step img/s: 1.0 means input and logging never stall the step.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import train_step  # noqa: E402  (benchmarks/train_step.py)

from p2p.hardware import machine  # noqa: E402


def loop_config(args: argparse.Namespace):
  """The experiment config on the given data, for warmup + steps steps, W&B off."""
  from p2p.config import load_config_file, train_config
  c = load_config_file(args.config)
  c.data.data_dir = args.data_dir
  c.batch_size = args.batch
  c.steps_per_call = args.steps_per_call
  c.compute_dtype = args.dtype
  c.data.worker_count, c.data.num_threads = args.worker_count, args.num_threads
  c.data.prefetch_buffer_size = args.prefetch
  c.data.resident = args.resident
  c.max_steps = args.warmup + args.steps
  c.log_every_steps = args.log_every
  c.eval_examples = c.num_sample_images = 2  # validation runs before and after the timed steps
  c.wandb.mode = "disabled"
  return train_config(c)


def measure_loop(args: argparse.Namespace) -> dict:
  """Images per second of the training loop over the timed steps."""
  from p2p.train.loop import train_and_evaluate
  config = loop_config(args)
  stamps: dict[int, float] = {}
  with tempfile.TemporaryDirectory() as workdir:
    start = time.perf_counter()
    train_and_evaluate(config, workdir, on_step=lambda s: stamps.setdefault(
        s, time.perf_counter()), progress=False)
    total = time.perf_counter() - start
  first, last = args.warmup, args.warmup + args.steps
  elapsed = stamps[last] - stamps[first]
  return {"loop_img_per_s": round(args.batch * (last - first) / elapsed, 3),
          "loop_steps_timed": last - first, "loop_run_s": round(total, 1),
          "image_size": config.data.image_size, "rf": config.model.receptive_field,
          "ngf": config.model.ngf, "ndf": config.model.ndf, "fm_weight": config.optim.fm_weight,
          "preprocess": config.data.preprocess,
          "matmul_conv_max_size": config.kernels.matmul_conv_max_size,
          "worker_count": config.data.worker_count, "num_threads": config.data.num_threads,
          "dtype": config.compute_dtype, "resident": config.data.resident,
          "log_every_steps": config.log_every_steps}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--data_dir", required=True, help="dataset folder (train/ and val/)")
  parser.add_argument("--config", default="configs/rf70_patches.py",
                      help="experiment config, optionally with its argument (configs/demo.py:tiny)")
  parser.add_argument("--batch", type=int, default=1)
  parser.add_argument("--steps_per_call", type=int, default=1)
  parser.add_argument("--warmup", type=int, default=5, help="untimed steps (compile, prefetch)")
  parser.add_argument("--steps", type=int, default=120,
                      help="timed steps (fewer let the machine's drift swing the ratio)")
  parser.add_argument("--log_every", type=int, default=10, help="config.log_every_steps")
  parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"),
                      help="config.compute_dtype")
  parser.add_argument("--worker_count", type=int, default=0, help="config.data.worker_count")
  parser.add_argument("--num_threads", type=int, default=2, help="config.data.num_threads")
  parser.add_argument("--prefetch", type=int, default=8, help="config.data.prefetch_buffer_size")
  parser.add_argument("--resident", action="store_true",
                      help="config.data.resident: the split decoded once, jittered on the device")
  parser.add_argument("--json", action="store_true", help="print only the JSON line")
  args = parser.parse_args()
  from p2p import cli
  cli.use_hugepage_malloc()
  from absl import flags
  flags.FLAGS.mark_as_parsed()  # grain workers read absl flags
  logging.basicConfig(level=logging.INFO, stream=sys.stderr, force=True,
                      format="%(asctime)s %(name)s %(message)s")  # phases, for a run that stalls
  logging.info("epoch.py: training loop (%s)", args.config)
  loop = measure_loop(args)
  logging.info("epoch.py: loop %s img/s; now the bare step", loop["loop_img_per_s"])
  # The bare step of the loop's own config (networks, losses, batch, dtype, K), timed for
  # calls of K steps each: ~half the loop's steps.
  step_args = argparse.Namespace(warmup=3, steps=max(10, args.steps // (2 * args.steps_per_call)))
  step = train_step.measure(step_args, loop_config(args))
  result = {"benchmark": "epoch", "config": args.config, "batch": args.batch, **loop,
            "step_img_per_s": step["img_per_s"], "step_fm_weight": step["fm_weight"],
            "loop_fraction": round(loop["loop_img_per_s"] / step["img_per_s"], 3),
            "compile_s": step["compile_s"], "peak_rss_mib": step["peak_rss_mib"],
            "backend": step["backend"], "device_kind": step["device_kind"],
            **machine(), "jax": step["jax"],
            "glibc_tunables": os.environ.get("GLIBC_TUNABLES", ""),
            "xla_flags": os.environ.get("XLA_FLAGS", "")}
  train_step.report(result, args.json)


if __name__ == "__main__":
  main()
