"""Speed of one pix2pix training step (G forward, D update, G update); prints one JSON line.

  python benchmarks/train_step.py --size=256 --batch=1 --rf=70 --json
  python benchmarks/train_step.py --size=256 --batch=4 --rf=286 --json

img_per_s is the median over --steps timed steps after warm-up; flops_per_step comes from
XLA's cost analysis of the compiled step; the float32 matmul peak is measured in the same run
(numpy/BLAS on every core; on a GPU, an 8192^3 jnp.matmul in the step's dtype), so
fraction_of_peak compares like with like on this machine. device_peak_mib is the accelerator
allocator's high-water mark (None on CPU).
Memory: peak_rss_mib is the whole process's high-water mark (compilation included, reported
apart as compile_peak_rss_mib); steady_rss_mib is the resident size after the timed steps.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import time
from typing import TYPE_CHECKING

import jax
import numpy as np

if TYPE_CHECKING:
  from p2p.config import TrainConfig


def matmul_peak_gflops(n: int = 2048, repeats: int = 5) -> float:
  """Best float32 GEMM rate of numpy's BLAS on this machine, GFLOP/s."""
  a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
  b = np.random.default_rng(1).standard_normal((n, n), dtype=np.float32)
  a @ b
  best = float("inf")
  for _ in range(repeats):
    start = time.perf_counter()
    a @ b
    best = min(best, time.perf_counter() - start)
  return 2 * n ** 3 / best / 1e9


def device_matmul_peak_gflops(dtype: str, n: int = 8192, repeats: int = 10) -> float:
  """Best rate of an n x n matmul on the default accelerator, in dtype at default precision."""
  import jax.numpy as jnp
  keys = jax.random.split(jax.random.key(0))
  a, b = (jax.random.normal(k, (n, n), dtype=jnp.dtype(dtype)) for k in keys)
  matmul = jax.jit(jnp.matmul)
  matmul(a, b).block_until_ready()
  best = float("inf")
  for _ in range(repeats):
    start = time.perf_counter()
    matmul(a, b).block_until_ready()
    best = min(best, time.perf_counter() - start)
  return 2 * n ** 3 / best / 1e9


def device_peak_mib() -> float | None:
  """High-water mark of the first device's allocator (None on backends without stats)."""
  stats = jax.local_devices()[0].memory_stats() or {}
  peak = stats.get("peak_bytes_in_use")
  return None if peak is None else round(peak / 2 ** 20, 1)


def make_config(args: argparse.Namespace):
  """The base config at the benchmark's size, batch, receptive field and model width."""
  from p2p.config import default_config, train_config
  c = default_config()
  c.data.image_size, c.data.load_size, c.data.patch_size = args.size, args.size, args.size
  c.batch_size, c.model.receptive_field = args.batch, args.rf
  c.model.ngf, c.model.ndf = args.ngf, args.ndf or args.ngf
  c.optim.fm_weight = args.fm_weight
  c.kernels.conv_transpose_impl, c.compute_dtype = args.conv_transpose, args.dtype
  c.model.upsample = args.upsample
  c.steps_per_call = args.steps_per_call
  c.kernels.matmul_conv_max_size = args.matmul_conv_max_size
  if args.winograd_min_tiles is not None:
    c.kernels.winograd_min_tiles = args.winograd_min_tiles
  return train_config(c)


def call_flops(compiled) -> float:
  """FLOPs of one call of a compiled function, from XLA's cost analysis."""
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  return float(cost.get("flops", float("nan")))


def step_flops(nets, config, mesh, abstract) -> float:
  """FLOPs of one single step (XLA counts a scan's body once, not once per iteration)."""
  from p2p.train.step import compile_step, precompile
  return call_flops(precompile(compile_step(nets, config, mesh), abstract, config, mesh))


def measure(args: argparse.Namespace, config: TrainConfig | None = None) -> dict:
  """Compiles the step before the state exists (as training does), times it, counts FLOPs.

  The step is that of `config` when given (its size, batch, networks and losses; args then
  only set warmup and steps), else of `make_config(args)`.
  """
  from p2p.hardware import machine
  from p2p.train import hostmem, parallel
  from p2p.train.state import abstract_state, build_networks, create_train_state
  from p2p.train.step import compile_step, precompile
  config = make_config(args) if config is None else config
  size, batch_size, k = config.data.image_size, config.batch_size, config.steps_per_call
  mesh = parallel.make_mesh()
  nets = build_networks(config, steps_per_epoch=1000)
  abstract = parallel.with_sharding(abstract_state(nets, size), parallel.replicated(mesh))
  start = time.perf_counter()
  step = precompile(compile_step(nets, config, mesh, k), abstract, config, mesh, k)
  compile_s = time.perf_counter() - start
  compile_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
  hostmem.trim_heap()  # as the training loop does after compiling
  flops = step_flops(nets, config, mesh, abstract) if k > 1 else call_flops(step)
  state = create_train_state(nets, config, mesh)
  hostmem.trim_heap()
  rng = np.random.default_rng(0)
  shape = (batch_size, size, size, 3) if k == 1 else (k, batch_size, size, size, 3)
  x = rng.uniform(-1, 1, shape).astype(np.float32)
  batch = parallel.global_batch({"input": x, "target": np.tanh(2 * x)}, mesh, stacked=k > 1)
  for _ in range(args.warmup):
    state, metrics = step(state, batch)
  jax.block_until_ready(metrics)
  times = []
  for _ in range(args.steps):
    start = time.perf_counter()
    state, metrics = step(state, batch)
    jax.block_until_ready(metrics)
    times.append(time.perf_counter() - start)
  median = statistics.median(times)
  steady_rss = hostmem.current_rss_mib()  # after the timed steps
  on_cpu = jax.default_backend() == "cpu"
  from p2p.ops import autotune
  dtype = autotune.resolve(config.compute_dtype).dtype
  peak = matmul_peak_gflops() if on_cpu else device_matmul_peak_gflops(dtype)
  achieved = k * flops / median / 1e9
  model = config.model
  return {
      "benchmark": "train_step", "size": size, "batch": batch_size, "rf": model.receptive_field,
      "ngf": model.ngf, "ndf": model.ndf, "fm_weight": config.optim.fm_weight,
      "dtype": dtype, "conv_transpose": config.kernels.conv_transpose_impl,
      "upsample": model.upsample, "matmul_conv_max_size": config.kernels.matmul_conv_max_size,
      "winograd_min_tiles": config.kernels.winograd_min_tiles,
      "steps_per_call": k, "img_per_s": round(k * batch_size / median, 3),
      "step_s_median": round(median / k, 4), "step_s_min": round(min(times) / k, 4),
      "steps_timed": k * len(times),
      "compile_s": round(compile_s, 2),
      "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
      "compile_peak_rss_mib": round(compile_peak, 1),
      "steady_rss_mib": round(steady_rss, 1),
      "flops_per_step": flops, "achieved_gflops": round(achieved, 1),
      # XLA:GPU's cost analysis leaves out convolutions (cuDNN custom calls): there flops,
      # achieved_gflops and fraction_of_peak undercount; use the CPU count of the same step.
      "flops_include_convs": on_cpu,
      "matmul_peak_gflops": round(peak, 1), "fraction_of_peak": round(achieved / peak, 3),
      "matmul_peak_of": "numpy float32 (all cores)" if on_cpu else f"jnp.matmul {dtype}",
      "device_peak_mib": device_peak_mib(),
      "backend": jax.default_backend(), "device_kind": jax.devices()[0].device_kind,
      "devices": jax.device_count(),
      **machine(), "jax": jax.__version__,
      "glibc_tunables": os.environ.get("GLIBC_TUNABLES", ""),
      "xla_flags": os.environ.get("XLA_FLAGS", ""),
      "compilation_cache": bool(jax.config.jax_compilation_cache_dir),
  }


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--size", type=int, default=256)
  parser.add_argument("--batch", type=int, default=1)
  parser.add_argument("--rf", type=int, default=70, choices=(1, 16, 34, 70, 142, 286))
  parser.add_argument("--ngf", type=int, default=64)
  parser.add_argument("--ndf", type=int, default=0, help="D's width (0 = --ngf)")
  parser.add_argument("--fm_weight", type=float, default=0.0,
                      help="optim.fm_weight (> 0 adds feature matching's extra D forward)")
  parser.add_argument("--dtype", default="float32", choices=("auto", "float32", "bfloat16"),
                      help="compute_dtype (auto: what this machine picks)")
  parser.add_argument("--conv_transpose", default="phase", choices=("phase", "flax"))
  parser.add_argument("--upsample", default="transposed", choices=("transposed", "resize"),
                      help="model.upsample: G's up convs")
  parser.add_argument("--matmul_conv_max_size", type=int, default=16,
                      help="kernels.matmul_conv_max_size (0 = every conv through lax)")
  parser.add_argument("--winograd_min_tiles", type=int, default=None,
                      help="kernels.winograd_min_tiles (0 = never; default: the config's)")
  parser.add_argument("--steps_per_call", type=int, default=1,
                      help="steps fused per jitted call (lax.scan); img/s counts every step")
  parser.add_argument("--warmup", type=int, default=3)
  parser.add_argument("--steps", type=int, default=10)
  parser.add_argument("--compilation_cache_dir", default="",
                      help="persistent XLA cache, as p2p.main uses (default: off, a cold "
                           "compile); run twice to measure a warm start's compile and memory")
  parser.add_argument("--json", action="store_true", help="print only the JSON line")
  args = parser.parse_args()
  from p2p import cli
  cli.use_hugepage_malloc()
  cli.use_compilation_cache(args.compilation_cache_dir)
  report(measure(args), args.json)


def report(result: dict, json_only: bool) -> None:
  """Prints the result as aligned lines (unless json_only), then as one JSON line."""
  if not json_only:
    for key, value in result.items():
      print(f"{key:>20}: {value}")
  print(json.dumps(result))


if __name__ == "__main__":
  main()
