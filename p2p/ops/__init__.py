"""How the networks' convs compute: one entry point per conv kind, the kernel picked by shape.

Every kernel here computes what the stock lax conv computes, with the same parameters; they
differ only in speed (XLA:CPU has slow spots that p2p.ops.conv and p2p.ops.winograd avoid).
KernelOptions is the `kernels` section of the config: knobs of speed, never of the model.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from flax.typing import PrecisionLike
from jax import lax

from p2p.fields import field
from p2p.ops.conv import (DIMENSION_NUMBERS, LAX_FORWARD_MIN_SIZE, NARROW_FEATURES, Padding,
                          lax_conv, lax_forward_conv_transpose, matmul_conv_s2,
                          matmul_conv_transpose, narrow_conv, nearest_up_kernel,
                          phase_conv_transpose, s2_conv)
from p2p.ops.gemm import gemm_conv, gemm_conv_s2, gemm_conv_transpose
from p2p.ops.winograd import winograd_conv, winograd_tiles

CONV_TRANSPOSE_IMPLS = ("phase", "flax")


@dataclasses.dataclass(frozen=True)
class KernelOptions:
  """Which conv kernels run where (config section `kernels`); outputs never depend on them."""

  conv_transpose_impl: str = field(
      "phase", "4x4 stride-2 transposed convs: phase (four 2x2 convs, fast on CPU) | flax "
      "(lax.conv_transpose, as flax.linen.ConvTranspose does); same parameters and outputs")
  matmul_conv_max_size: int = field(
      16, "4x4 stride-2 convs whose larger side is at most this many px run as patch "
      "extraction + one GEMM (the U-Net's inner levels); 0 = never")
  winograd_min_tiles: int = field(
      128, "on CPU, float32 4x4 stride-1 convs with at least this many 4x4 output tiles "
      "(batch x tiles; 64 per image for the 70x70 D at 256 px) run as Winograd F(4x4, 4x4), "
      "equal up to float32 rounding; 0 = never")
  bf16_gemm: bool = field(
      True, "on CPU, bfloat16 convs run as im2col + bf16 GEMMs in the one form XLA:CPU sends to "
      "its bf16 matrix kernels (AMX tiles where present); False = lax's bf16 convs")

  def __post_init__(self):
    if self.conv_transpose_impl not in CONV_TRANSPOSE_IMPLS:
      raise ValueError(f"conv_transpose_impl={self.conv_transpose_impl!r} is not one of "
                       f"{CONV_TRANSPOSE_IMPLS}.")
    for name in ("matmul_conv_max_size", "winograd_min_tiles"):
      if getattr(self, name) < 0:
        raise ValueError(f"{name}={getattr(self, name)} must be >= 0 (0 = never).")


def cpu_rewrites() -> bool:
  """Whether the XLA:CPU-only forms (s2_conv, winograd_conv) apply: a CPU backend."""
  return jax.default_backend() == "cpu"


def bf16_gemm(x: jax.Array, options: KernelOptions) -> bool:
  """Whether a conv of x runs as p2p.ops.gemm's bf16 GEMMs: bf16 on CPU, unless switched off."""
  return options.bf16_gemm and x.dtype == jnp.bfloat16 and cpu_rewrites()


def conv2d(x_BxHxWxC: jax.Array, kernel_KxKxCxF: jax.Array, stride: int,
           options: KernelOptions = KernelOptions(), precision: PrecisionLike = None
           ) -> jax.Array:
  """A square conv with pix2pix's padding (k - 1) // 2, by the fastest equal kernel.

  bf16 on CPU: 4x4 stride-2 and stride-1 convs run as bf16 GEMMs (bf16_gemm). Otherwise
  4x4 stride-2 convs run as one GEMM up to options.matmul_conv_max_size px, else (on CPU) with
  s2_conv's input gradient; float32 4x4 stride-1 convs with enough output tiles as Winograd; a
  conv with few output features with narrow_conv's kernel gradient; the rest as lax's conv.
  """
  k, features = kernel_KxKxCxF.shape[0], kernel_KxKxCxF.shape[-1]
  pad = (k - 1) // 2
  padding: Padding = ((pad, pad), (pad, pad))
  height, width = x_BxHxWxC.shape[1:3]
  down = (k, stride, pad) == (4, 2, 1) and height % 2 == 0 and width % 2 == 0
  if bf16_gemm(x_BxHxWxC, options) and (down or stride == 1):
    return gemm_conv_s2(x_BxHxWxC, kernel_KxKxCxF) if down else gemm_conv(
        x_BxHxWxC, kernel_KxKxCxF, padding)
  if down and max(height, width) <= options.matmul_conv_max_size:
    return matmul_conv_s2(x_BxHxWxC, kernel_KxKxCxF, precision)
  if down and cpu_rewrites():
    return s2_conv(x_BxHxWxC, kernel_KxKxCxF, precision)
  if ((stride, k) == (1, 4) and features > NARROW_FEATURES and cpu_rewrites()
      and x_BxHxWxC.dtype == jnp.float32  # bf16 would amplify Winograd's rounding
      and 0 < options.winograd_min_tiles <= winograd_tiles(x_BxHxWxC.shape[0], height, width,
                                                           padding)):
    return winograd_conv(x_BxHxWxC, kernel_KxKxCxF, padding, precision)
  if stride == 1 and k > 1 and features <= NARROW_FEATURES:
    return narrow_conv(x_BxHxWxC, kernel_KxKxCxF, padding, precision)
  return lax_conv(x_BxHxWxC, kernel_KxKxCxF, (stride, stride), padding, precision)


def conv_transpose2d(x_BxHxWxC: jax.Array, kernel_KxKxCxF: jax.Array,
                     options: KernelOptions = KernelOptions(), precision: PrecisionLike = None
                     ) -> jax.Array:
  """B x H x W x C -> B x 2H x 2W x F: a 4x4 stride-2 'SAME' transposed conv, or resize-conv.

  A 3x3 kernel means nearest 2x upsampling then that 3x3 conv (Odena et al., 2016), run as the
  equal 4x4 transposed conv (nearest_up_kernel). bf16 on CPU runs as bf16 GEMMs; otherwise
  inputs whose output side is at most options.matmul_conv_max_size run as one batched GEMM
  (on CPU from LAX_FORWARD_MIN_SIZE px with lax's forward), others by options.conv_transpose_impl.
  """
  if kernel_KxKxCxF.shape[0] == 3:
    kernel_KxKxCxF = nearest_up_kernel(kernel_KxKxCxF)
  if bf16_gemm(x_BxHxWxC, options):
    return gemm_conv_transpose(x_BxHxWxC, kernel_KxKxCxF)
  if 2 * max(x_BxHxWxC.shape[1:3]) <= options.matmul_conv_max_size:
    if min(x_BxHxWxC.shape[1:3]) >= LAX_FORWARD_MIN_SIZE and cpu_rewrites():
      return lax_forward_conv_transpose(x_BxHxWxC, kernel_KxKxCxF, precision)
    return matmul_conv_transpose(x_BxHxWxC, kernel_KxKxCxF, precision)
  if options.conv_transpose_impl == "flax":
    return lax.conv_transpose(x_BxHxWxC, kernel_KxKxCxF, (2, 2), "SAME",
                              dimension_numbers=DIMENSION_NUMBERS, precision=precision)
  return phase_conv_transpose(x_BxHxWxC, kernel_KxKxCxF, precision)


__all__ = ["CONV_TRANSPOSE_IMPLS", "KernelOptions", "bf16_gemm", "conv2d", "conv_transpose2d",
           "cpu_rewrites"]
