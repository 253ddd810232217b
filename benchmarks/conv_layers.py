"""GFLOP/s of every conv of the pix2pix networks, forward and forward+backward; one JSON line.

  python benchmarks/conv_layers.py --batch=1 --json
  python benchmarks/conv_layers.py --impls=p2p-float32,p2p-bf16-gemm,torch-float32 --json

Each conv of the U-Net (ngf 64, 256 px: 8 down, 8 up) and of the 70x70 PatchGAN (ndf 64, a
6-channel 256 px input) at its real shape, timed alone: the median of --repeats calls after a
warm-up, for "fwd" (y = conv(x, w)) and "fwd_bwd" (y, dx and dw). GFLOP/s count 2*MACs of
the forward, times 3 for fwd_bwd. Implementations: p2p-float32 (p2p.ops as float32 training runs
them), p2p-bf16-gemm (p2p.ops.gemm: im2col + bf16 GEMMs in XLA:CPU's matrix-unit form),
p2p-bf16-lax (lax's bf16 conv), torch-float32 and torch-bf16 (torch.nn.functional under
torch.autocast; only when PyTorch is installed, `.[bench]`).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# (name, kind, input side, in features, out features): kind down = 4x4 stride 2, up = 4x4
# stride-2 transposed, s1 = 4x4 stride 1 with padding 1.
LAYERS = (
    [(f"G.down{i + 1}", "down", 256 >> i, c, f) for i, (c, f) in enumerate(
        [(3, 64), (64, 128), (128, 256), (256, 512), (512, 512), (512, 512), (512, 512),
         (512, 512)])]
    + [(f"G.up{8 - i}", "up", 1 << i, c, f) for i, (c, f) in enumerate(
        [(512, 512), (1024, 512), (1024, 512), (1024, 512), (1024, 256), (512, 128),
         (256, 64), (128, 3)])]
    + [("D.conv1", "down", 256, 6, 64), ("D.conv2", "down", 128, 64, 128),
       ("D.conv3", "down", 64, 128, 256), ("D.conv4", "s1", 32, 256, 512),
       ("D.conv5", "s1", 31, 512, 1)])
IMPLS = ("p2p-float32", "p2p-bf16-gemm", "p2p-bf16-lax", "torch-float32", "torch-bf16")


def out_side(kind: str, side: int) -> int:
  """The output's side for an input of `side` px."""
  return {"down": side // 2, "up": side * 2, "s1": side - 1}[kind]


def forward_flops(kind: str, batch: int, side: int, c: int, f: int) -> float:
  """2 * multiply-adds of one forward (a transposed conv: 4 of its 16 taps per output)."""
  taps = 4 if kind == "up" else 16
  return 2.0 * batch * out_side(kind, side) ** 2 * taps * c * f


def median_seconds(fn, repeats: int) -> float:
  """Median seconds of fn() after one warm-up call."""
  fn()
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    fn()
    times.append(time.perf_counter() - start)
  return statistics.median(times)


def p2p_fns(impl: str, kind: str, batch: int, side: int, c: int, f: int):
  """(forward, forward+backward) callables for one p2p layer."""
  import jax
  import jax.numpy as jnp

  from p2p.ops import KernelOptions, conv2d, conv_transpose2d
  dtype = jnp.float32 if impl == "p2p-float32" else jnp.bfloat16
  options = KernelOptions(bf16_gemm=impl != "p2p-bf16-lax")
  x = jax.random.normal(jax.random.key(0), (batch, side, side, c)).astype(dtype)
  w = 0.02 * jax.random.normal(jax.random.key(1), (4, 4, c, f))

  def conv(x, w):
    w = w.astype(dtype)
    return (conv_transpose2d(x, w, options) if kind == "up"
            else conv2d(x, w, 2 if kind == "down" else 1, options))

  g = jnp.ones(jax.eval_shape(conv, x, w).shape, dtype)
  fwd = jax.jit(conv)
  both = jax.jit(lambda x, w: jax.vjp(conv, x, w)[1](g))
  return (lambda: jax.block_until_ready(fwd(x, w)),
          lambda: jax.block_until_ready(both(x, w)))


def torch_fns(impl: str, kind: str, batch: int, side: int, c: int, f: int):
  """(forward, forward+backward) callables for one PyTorch layer (NCHW, oneDNN)."""
  import contextlib

  import torch
  import torch.nn.functional as F
  cast = (torch.autocast("cpu", dtype=torch.bfloat16) if impl == "torch-bf16"
          else contextlib.nullcontext())
  x = torch.randn(batch, c, side, side, requires_grad=True)
  w = (0.02 * torch.randn(*((c, f) if kind == "up" else (f, c)), 4, 4)).requires_grad_()

  def conv():
    with cast:
      if kind == "up":
        return F.conv_transpose2d(x, w, stride=2, padding=1)
      return F.conv2d(x, w, stride=2 if kind == "down" else 1, padding=1)

  def fwd():
    with torch.no_grad():
      conv()

  def both():
    y = conv()
    y.backward(torch.ones_like(y))
    x.grad = w.grad = None
  return fwd, both


def measure(args: argparse.Namespace) -> dict:
  """Every layer by every implementation: seconds and GFLOP/s."""
  impls = args.impls.split(",")
  if any(i.startswith("torch") for i in impls):
    try:
      import torch
      torch.set_num_threads(args.threads or torch.get_num_threads())
    except ImportError:
      impls = [i for i in impls if not i.startswith("torch")]
  rows = []
  for name, kind, side, c, f in LAYERS:
    flops = forward_flops(kind, args.batch, side, c, f)
    row = {"layer": name, "kind": kind, "in": [side, c], "out": [out_side(kind, side), f],
           "fwd_gflop": round(flops / 1e9, 4)}
    for impl in impls:
      make = torch_fns if impl.startswith("torch") else p2p_fns
      fwd, both = make(impl, kind, args.batch, side, c, f)
      t_fwd, t_both = median_seconds(fwd, args.repeats), median_seconds(both, args.repeats)
      row[impl] = {"fwd_ms": round(1e3 * t_fwd, 3), "fwd_bwd_ms": round(1e3 * t_both, 3),
                   "fwd_gflops": round(flops / t_fwd / 1e9, 1),
                   "fwd_bwd_gflops": round(3 * flops / t_both / 1e9, 1)}
    rows.append(row)
    if not args.json:
      print(name, {i: (row[i]["fwd_gflops"], row[i]["fwd_bwd_gflops"]) for i in impls},
            file=sys.stderr)
  totals = {i: {"fwd_ms": round(sum(r[i]["fwd_ms"] for r in rows), 1),
                "fwd_bwd_ms": round(sum(r[i]["fwd_bwd_ms"] for r in rows), 1)} for i in impls}
  from p2p.hardware import machine
  return {"benchmark": "conv_layers", **machine(), "batch": args.batch,
          "repeats": args.repeats, "layers": rows, "totals": totals}


def main() -> None:
  """Parses flags, measures, prints one JSON line."""
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--batch", type=int, default=1)
  p.add_argument("--impls", default=",".join(IMPLS))
  p.add_argument("--repeats", type=int, default=5)
  p.add_argument("--threads", type=int, default=0, help="PyTorch threads (0 = its default)")
  p.add_argument("--json", action="store_true", help="print only the JSON line")
  args = p.parse_args()
  from p2p import cli
  cli.use_hugepage_malloc()
  print(json.dumps(measure(args)))


if __name__ == "__main__":
  main()
