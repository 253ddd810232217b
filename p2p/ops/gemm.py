"""bf16 convs as GEMMs in the one form XLA:CPU sends to its bf16 matrix kernels (AMX, AVX512-BF16).

XLA:CPU runs a dot on YNNPACK's bf16 kernels (`__ynn_fusion` in the compiled HLO), and so on
AMX tiles where the CPU has them, only as bf16 x bf16 -> float32 with both operands row-major
and untransposed (lhs contracting dim 1, rhs dim 0); a bf16 `lax.conv_general_dilated` never
gets there (../shared/NOTES.md, docs/performance.md). So here:
- `mxu_dot` is that dot, with a custom VJP whose two backward GEMMs get the same form: the small
  operand is transposed physically (behind an optimization barrier, or layout assignment folds
  the transpose back into a slow transposed dot);
- `gemm_conv` is a stride-1 conv as patch extraction (im2col) + mxu_dot; the patches' gradient
  (col2im) is left to autodiff (pads and adds);
- `gemm_conv_s2` (pix2pix's 4x4 stride-2 down conv) is im2col over stride-2 slices, or over the
  space-to-depth input from 32 px, + mxu_dot;
- `gemm_conv_transpose` (the 4x4 stride-2 'SAME' up conv) is gemm_conv with the four phases'
  kernels side by side as 4F outputs, then the phases interleaved.
Each computes what the stock conv computes, up to bf16 rounding of its operands; the float32
kernel is cast inside, so its gradient is accumulated and returned in float32.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

from p2p.ops.conv import Padding, interleave_phases, phase_kernel, s2_patches

CONTRACT = (((1,), (0,)), ((), ()))
# gemm_conv_s2 switches to space-to-depth at this input size (measured per layer, bf16, batch 1).
S2D_MIN_SIZE = 32


def pinned(x: jax.Array) -> jax.Array:
  """x as laid out now: XLA cannot fold a transpose across this (into or out of a dot)."""
  return lax.optimization_barrier(x.reshape(-1)).reshape(x.shape)


def physical_transpose(x_MxN: jax.Array) -> jax.Array:
  """x.T laid out row-major in memory (a dot then reads it untransposed)."""
  return pinned(x_MxN.T)


def _dot(a_MxK: jax.Array, b_KxN: jax.Array) -> jax.Array:
  return lax.dot_general(a_MxK, b_KxN, CONTRACT, preferred_element_type=jnp.float32)


@jax.custom_vjp
def mxu_dot(a_MxK: jax.Array, b_KxN: jax.Array) -> jax.Array:
  """a @ b in bf16 with float32 accumulation and output; a is bf16, b may be float32 (cast
  inside, its gradient returned in b's dtype)."""
  return _dot(a_MxK.astype(jnp.bfloat16), b_KxN.astype(jnp.bfloat16))


def _mxu_dot_fwd(a, b):
  a16 = a.astype(jnp.bfloat16)
  return _dot(a16, b.astype(jnp.bfloat16)), (a16, b)


def _mxu_dot_bwd(residuals, grad_MxN):
  a16, b = residuals
  b16, g16 = b.astype(jnp.bfloat16), grad_MxN.astype(jnp.bfloat16)
  grad_a = _dot(g16, physical_transpose(b16))  # (M x N)(N x K)
  m, k = a16.shape
  n = b16.shape[1]
  if n <= k:  # transpose the smaller operand: g^T a (N x K), then the small result (a bare
    # .T would be folded into the dot as transposed operands, the slow form)
    grad_b = pinned(_dot(physical_transpose(g16), a16)).T
  else:
    grad_b = _dot(physical_transpose(a16), g16)
  return grad_a.astype(jnp.bfloat16), grad_b.astype(b.dtype)


mxu_dot.defvjp(_mxu_dot_fwd, _mxu_dot_bwd)


def patches(x_BxHxWxC: jax.Array, kh: int, kw: int, padding: Padding) -> jax.Array:
  """B x H' x W' x (kh kw C): the stride-1 receptive fields, taps in HWIO's (row, col) order."""
  x = jnp.pad(x_BxHxWxC, ((0, 0), padding[0], padding[1], (0, 0)))
  h, w = x.shape[1] - kh + 1, x.shape[2] - kw + 1
  return jnp.concatenate([x[:, i:i + h, j:j + w] for i in range(kh) for j in range(kw)], -1)


def gemm_conv(x_BxHxWxC: jax.Array, kernel_KhxKwxCxF: jax.Array, padding: Padding) -> jax.Array:
  """A stride-1 conv as im2col + mxu_dot; bf16 out."""
  kh, kw, c, features = kernel_KhxKwxCxF.shape
  p = patches(x_BxHxWxC.astype(jnp.bfloat16), kh, kw, padding)
  y = mxu_dot(p.reshape(-1, kh * kw * c), kernel_KhxKwxCxF.reshape(kh * kw * c, features))
  return y.reshape(*p.shape[:3], features).astype(jnp.bfloat16)


def gemm_conv_s2(x_BxHxWxC: jax.Array, kernel_4x4xCxF: jax.Array) -> jax.Array:
  """A 4x4 stride-2 conv with padding 1 as im2col + mxu_dot. H and W must be even.

  From S2D_MIN_SIZE px: a 2x2 gemm_conv over the space-to-depth input (X[m] = x_pad[2m:2m+2],
  output i reads X[i] and X[i+1] through kernel rows 2a + p), whose col2im adds 4 slices.
  Below, where kernels outweigh activations: the 16 taps' stride-2 slices in the kernel's own
  (row, col, C) order, so the kernel is a free reshape rather than a re-laid-out copy.
  """
  b, h, w, c = x_BxHxWxC.shape
  features = kernel_4x4xCxF.shape[-1]
  if max(h, w) < S2D_MIN_SIZE:
    p = s2_patches(x_BxHxWxC.astype(jnp.bfloat16))
    y = mxu_dot(p.reshape(-1, 16 * c), kernel_4x4xCxF.reshape(16 * c, features))
    return y.reshape(b, h // 2, w // 2, features).astype(jnp.bfloat16)
  x_pad = jnp.pad(x_BxHxWxC.astype(jnp.bfloat16), ((0, 0), (1, 1), (1, 1), (0, 0)))
  x_s2d = (x_pad.reshape(b, h // 2 + 1, 2, w // 2 + 1, 2, c).transpose(0, 1, 3, 2, 4, 5)
           .reshape(b, h // 2 + 1, w // 2 + 1, 4 * c))  # channels (p, q, c)
  # kernel row ky = 2a + p, col kx = 2bb + q  ->  (a, bb) x (p, q, c) x F
  kernel = (kernel_4x4xCxF.reshape(2, 2, 2, 2, c, features).transpose(0, 2, 1, 3, 4, 5)
            .reshape(2, 2, 4 * c, features))
  return gemm_conv(x_s2d, kernel, ((0, 0), (0, 0)))


def gemm_conv_transpose(x_BxHxWxC: jax.Array, kernel_4x4xCxF: jax.Array) -> jax.Array:
  """lax.conv_transpose(x, k, (2, 2), 'SAME') as one 2x2 gemm_conv with (ry, rx, F) outputs,
  its phases interleaved (as p2p.ops.conv's fused phase conv)."""
  return interleave_phases(gemm_conv(x_BxHxWxC, phase_kernel(kernel_4x4xCxF), ((1, 1), (1, 1))))
