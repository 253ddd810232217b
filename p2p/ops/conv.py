"""Conv kernels that are fast on XLA:CPU; each computes exactly what a stock lax conv computes.

XLA:CPU has these slow spots in the pix2pix networks, all measured in benchmarks/:
- the kernel gradient of a transposed conv (lhs dilation): `phase_conv_transpose` runs the
  4x4 stride-2 transposed conv as stride-1 2x2 convs over the kernel's phase slices (one wide
  conv for all four phases when F <= 128);
- small-spatial convs (the U-Net's inner levels, <= 16 px), where one conv call costs more than
  its FLOPs: `matmul_conv_s2` / `matmul_conv_transpose` run them as patch extraction + one GEMM
  (`lax_forward_conv_transpose`: with lax's forward at 4-8 px, where the kernels dominate);
- the kernel gradient of a conv with very few output features (the U-Net's RGB output layer,
  the PatchGAN's logit layer): `narrow_conv` computes it as one GEMM over the whole input;
- the input gradient of a 4x4 stride-2 conv (an lhs-dilated conv): `s2_conv` computes it as
  the transposed conv it is, through `phase_conv_transpose`.
`nearest_up_kernel` turns nearest 2x upsampling + a 3x3 conv into the same 4x4 transposed conv.
`p2p.ops.winograd` runs a large-batch 4x4 stride-1 conv (the PatchGAN's widest) in ~5x fewer
multiplies.
Kernels are HWIO and activations NHWC throughout, as in flax.linen.Conv.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from flax.typing import PrecisionLike
from jax import lax

DIMENSION_NUMBERS = ("NHWC", "HWIO", "NHWC")
# Output phase r of a 4x4 stride-2 'SAME' transposed conv reads x[t-1], x[t] (r=0) or x[t], x[t+1]
# (r=1) through the kernel taps k[r::2]: pad one before (r=0) or one after (r=1).
PHASE_PADDING = ((1, 0), (0, 1))
# A conv with at most this many output features gets its kernel gradient from per-tap GEMMs.
NARROW_FEATURES = 4
# A transposed conv with at most this many output features runs its phases as one conv.
FUSED_PHASE_FEATURES = 128

Padding = tuple[tuple[int, int], tuple[int, int]]


def nearest_up_kernel(kernel_3x3xCxF: jax.Array) -> jax.Array:
  """The 4x4 transposed-conv kernel equal to nearest 2x upsampling then this 3x3 conv.

  Along each axis k4 = (k0, k0 + k1, k1 + k2, k2): the 3x3 taps summed over the 2x2 box that
  nearest upsampling repeats each input pixel into. Pads and adds, not a dot: XLA:CPU runs a
  contraction over 3 taps ~25% slower for the whole train step.
  """
  def box(k: jax.Array, axis: int) -> jax.Array:
    after, before = [(0, 0)] * 4, [(0, 0)] * 4
    after[axis], before[axis] = (0, 1), (1, 0)
    return jnp.pad(k, after) + jnp.pad(k, before)
  return box(box(kernel_3x3xCxF, 0), 1)


def lax_conv(x_BxHxWxC: jax.Array, kernel_KxKxCxF: jax.Array, strides: tuple[int, int],
             padding: Padding, precision: PrecisionLike = None) -> jax.Array:
  """The stock conv: lax.conv_general_dilated in NHWC/HWIO."""
  return lax.conv_general_dilated(x_BxHxWxC, kernel_KxKxCxF, strides, padding,
                                  dimension_numbers=DIMENSION_NUMBERS, precision=precision)


def _matmul(patches: jax.Array, kernel_KxF: jax.Array, precision: PrecisionLike) -> jax.Array:
  """patches ... x K times kernel K x F -> ... x F."""
  return lax.dot_general(patches, kernel_KxF, (((patches.ndim - 1,), (0,)), ((), ())),
                         precision=precision)


def s2_patches(x_BxHxWxC: jax.Array) -> jax.Array:
  """B x H/2 x W/2 x 16C: a 4x4 stride-2 padding-1 conv's receptive fields, in the kernel's own
  (row, col, C) order (the 16 taps' stride-2 slices of x padded by one)."""
  _, h, w, _ = x_BxHxWxC.shape
  x_pad = jnp.pad(x_BxHxWxC, ((0, 0), (1, 1), (1, 1), (0, 0)))
  return jnp.concatenate([x_pad[:, ky:ky + h:2, kx:kx + w:2]
                          for ky in range(4) for kx in range(4)], axis=-1)


def phase_kernel(kernel_4x4xCxF: jax.Array) -> jax.Array:
  """2 x 2 x C x 4F: a 4x4 transposed conv's four phase kernels side by side, (ry, rx, F) outputs.

  Kernel row ky = 2a + ry, col kx = 2bb + rx  ->  (a, bb) x C x (ry, rx, F).
  """
  _, _, c, features = kernel_4x4xCxF.shape
  return (kernel_4x4xCxF.reshape(2, 2, 2, 2, c, features).transpose(0, 2, 4, 1, 3, 5)
          .reshape(2, 2, c, 4 * features))


def interleave_phases(y_BxH1xW1x4F: jax.Array) -> jax.Array:
  """B x 2H x 2W x F from the wide phase conv's B x (H+1) x (W+1) x (ry, rx, F) output.

  Phase (ry, rx) output t reads x_pad[t + ry + a] through kernel[ry + 2a]: the wide conv's
  output at t + ry, in its (ry, rx) block.
  """
  b, h1, w1, f4 = y_BxH1xW1x4F.shape
  h, w, features = h1 - 1, w1 - 1, f4 // 4
  y = y_BxH1xW1x4F.reshape(b, h1, w1, 2, 2, features)
  rows = [jnp.stack([y[:, ry:ry + h, rx:rx + w, ry, rx] for rx in (0, 1)], axis=3)
          for ry in (0, 1)]
  return jnp.stack(rows, axis=2).reshape(b, 2 * h, 2 * w, features)


def matmul_conv_s2(x_BxHxWxC: jax.Array, kernel_4x4xCxF: jax.Array,
                   precision: PrecisionLike = None) -> jax.Array:
  """A 4x4 stride-2 conv with padding 1 (pix2pix's down conv) as patch extraction + one GEMM.

  The patches are the 16 taps' stride-2 slices of x padded by one, in the kernel's own
  (row, col, C) order, so the kernel enters the GEMM as a free reshape: at the U-Net's inner
  levels the kernels are far larger than the activations, and re-laying them out (as a
  space-to-depth formulation must) cost more than the GEMM. H and W must be even.
  """
  b, h, w, c = x_BxHxWxC.shape
  features = kernel_4x4xCxF.shape[-1]
  if (h, w) == (2, 2):  # one output pixel: only the central 2x2 taps see the input
    kernel = kernel_4x4xCxF[1:3, 1:3].reshape(4 * c, features)
    return _matmul(x_BxHxWxC.reshape(b, 1, 1, 4 * c), kernel, precision)
  return _matmul(s2_patches(x_BxHxWxC), kernel_4x4xCxF.reshape(16 * c, features), precision)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def s2_conv(x_BxHxWxC: jax.Array, kernel_4x4xCxF: jax.Array,
            precision: PrecisionLike = None) -> jax.Array:
  """A 4x4 stride-2 conv with padding 1 whose input gradient runs as phase_conv_transpose.

  That gradient is the 'SAME' transposed conv of the output gradient with the kernel flipped
  and its in/out features swapped; XLA:CPU's lhs-dilated conv for it is up to ~1.5x slower.
  H and W must be even.
  """
  return lax_conv(x_BxHxWxC, kernel_4x4xCxF, (2, 2), ((1, 1), (1, 1)), precision)


def _s2_conv_fwd(x, kernel, precision):
  return s2_conv(x, kernel, precision), (x, kernel)


def _s2_conv_bwd(precision, residuals, grad_BxHxWxF):
  x, kernel = residuals
  grad_x = phase_conv_transpose(grad_BxHxWxF, kernel[::-1, ::-1].swapaxes(2, 3), precision)
  _, kernel_vjp = jax.vjp(
      lambda k: lax_conv(x, k, (2, 2), ((1, 1), (1, 1)), precision), kernel)
  (grad_kernel,) = kernel_vjp(grad_BxHxWxF)
  return grad_x.astype(x.dtype), grad_kernel


s2_conv.defvjp(_s2_conv_fwd, _s2_conv_bwd)


def phase_conv_transpose(x_BxHxWxC: jax.Array, kernel_4x4xCxF: jax.Array,
                         precision: PrecisionLike = None) -> jax.Array:
  """lax.conv_transpose(x, k, (2, 2), 'SAME') as stride-1 2x2 convs over the kernel's phases.

  Up to FUSED_PHASE_FEATURES output features the four phases run as one conv with 4F outputs
  (wider GEMMs); beyond, as four convs, interleaved.
  """
  b, h, w, _ = x_BxHxWxC.shape
  features = kernel_4x4xCxF.shape[-1]
  if features <= FUSED_PHASE_FEATURES:
    return _fused_phase_conv_transpose(x_BxHxWxC, kernel_4x4xCxF, precision)
  conv = narrow_conv if features <= NARROW_FEATURES else _stride1_conv
  rows = []
  for ry in (0, 1):
    cols = [conv(x_BxHxWxC, kernel_4x4xCxF[ry::2, rx::2], (PHASE_PADDING[ry], PHASE_PADDING[rx]),
                 precision) for rx in (0, 1)]
    rows.append(jnp.stack(cols, axis=3))  # B x H x W x 2(rx) x F
  y_BxHx2xWx2xF = jnp.stack(rows, axis=2)
  return y_BxHx2xWx2xF.reshape(b, 2 * h, 2 * w, features)


def _fused_phase_conv_transpose(x_BxHxWxC: jax.Array, kernel_4x4xCxF: jax.Array,
                                precision: PrecisionLike = None) -> jax.Array:
  """The four phases as one 2x2 conv over x padded by one, with (ry, rx, F) output features.

  See phase_kernel and interleave_phases. The kernel gradient comes from per-tap GEMMs
  (narrow_conv): XLA:CPU's own is ~2x slower here.
  """
  x_pad = jnp.pad(x_BxHxWxC, ((0, 0), (1, 1), (1, 1), (0, 0)))
  return interleave_phases(narrow_conv(x_pad, phase_kernel(kernel_4x4xCxF), ((0, 0), (0, 0)),
                                       precision))


def matmul_conv_transpose(x_BxHxWxC: jax.Array, kernel_4x4xCxF: jax.Array,
                          precision: PrecisionLike = None) -> jax.Array:
  """phase_conv_transpose as one batched GEMM over the four phases (for small inputs).

  With x padded by one on each side, phase (ry, rx) tap (a, bb) reads offset (ry+a, rx+bb)
  through kernel[ry + 2a, rx + 2bb]. The phases' kernels are one transpose of the kernel, so
  its gradient is one transpose too (not four padded slices summed).
  """
  b, h, w, c = x_BxHxWxC.shape
  features = kernel_4x4xCxF.shape[-1]
  if (h, w) == (1, 1):  # output (ry, rx) sees the input only through kernel[2 - ry, 2 - rx]
    kernel_Cx2x2xF = kernel_4x4xCxF[2:0:-1, 2:0:-1].transpose(2, 0, 1, 3)
    return _matmul(x_BxHxWxC, kernel_Cx2x2xF, precision).reshape(b, 2, 2, features)
  x_pad = jnp.pad(x_BxHxWxC, ((0, 0), (1, 1), (1, 1), (0, 0)))
  patches_4xBxHxWx4C = jnp.stack([
      jnp.concatenate([x_pad[:, ry + a:ry + a + h, rx + bb:rx + bb + w]
                       for a in (0, 1) for bb in (0, 1)], axis=-1)
      for ry in (0, 1) for rx in (0, 1)])
  # kernel row ky = 2a + ry, col kx = 2bb + rx  ->  (ry, rx) x (a, bb, c) x F
  kernel_4x4CxF = (kernel_4x4xCxF.reshape(2, 2, 2, 2, c, features).transpose(1, 3, 0, 2, 4, 5)
                   .reshape(4, 4 * c, features))
  y_4xBxHxWxF = lax.dot_general(patches_4xBxHxWx4C, kernel_4x4CxF,
                                (((4,), (1,)), ((0,), (0,))), precision=precision)
  y = y_4xBxHxWxF.reshape(2, 2, b, h, w, features).transpose(2, 3, 0, 4, 1, 5)
  return y.reshape(b, 2 * h, 2 * w, features)


# From this input side, small transposed convs run lax's own forward (no kernel re-layout):
# 3.4 vs 16.2 ms at 4 px and 5.2 vs 17.9 ms at 8 px (1024 -> 512 features, batch 1); at 2 px
# lax's is 5x slower than the GEMM.
LAX_FORWARD_MIN_SIZE = 4


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def lax_forward_conv_transpose(x_BxHxWxC: jax.Array, kernel_4x4xCxF: jax.Array,
                               precision: PrecisionLike = None) -> jax.Array:
  """matmul_conv_transpose's result by lax.conv_transpose forward, its GEMMs' gradients backward.

  At the U-Net's inner levels the kernels far outweigh the activations: XLA:CPU's transposed
  conv reads the kernel as it is, while the GEMM form re-lays it out first; backward, the GEMM
  form's gradients are the fast ones (lax's kernel gradient is the slow lhs-dilated conv).
  """
  return lax.conv_transpose(x_BxHxWxC, kernel_4x4xCxF, (2, 2), "SAME",
                            dimension_numbers=DIMENSION_NUMBERS, precision=precision)


def _lax_forward_fwd(x, kernel, precision):
  return lax_forward_conv_transpose(x, kernel, precision), (x, kernel)


def _lax_forward_bwd(precision, residuals, grad):
  x, kernel = residuals
  _, vjp = jax.vjp(lambda x, k: matmul_conv_transpose(x, k, precision), x, kernel)
  return vjp(grad)


lax_forward_conv_transpose.defvjp(_lax_forward_fwd, _lax_forward_bwd)


def _stride1_conv(x: jax.Array, kernel: jax.Array, padding: Padding,
                  precision: PrecisionLike = None) -> jax.Array:
  return lax_conv(x, kernel, (1, 1), padding, precision)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def narrow_conv(x_BxHxWxC: jax.Array, kernel_KxKxCxF: jax.Array, padding: Padding,
                precision: PrecisionLike = None) -> jax.Array:
  """A stride-1 conv whose kernel gradient is one (F x C) GEMM per tap.

  Faster than XLA:CPU's kernel gradient for few output features (F of a few) and for the wide
  fused phase conv of a transposed conv.
  """
  return _stride1_conv(x_BxHxWxC, kernel_KxKxCxF, padding, precision)


def _narrow_conv_fwd(x, kernel, padding, precision):
  return _stride1_conv(x, kernel, padding, precision), (x, kernel)


def _narrow_conv_bwd(padding, precision, residuals, grad_BxHxWxF):
  x, kernel = residuals
  _, input_vjp = jax.vjp(lambda x: _stride1_conv(x, kernel, padding, precision), x)
  (grad_x,) = input_vjp(grad_BxHxWxF)
  kh, kw, c, features = kernel.shape
  h, w = grad_BxHxWxF.shape[1:3]
  x_pad = jnp.pad(x, ((0, 0), padding[0], padding[1], (0, 0)))
  hp, wp = x_pad.shape[1:3]
  if kh * kw * features <= c:
    # Few outputs: shift the small gradient to each tap instead of slicing the wide input,
    # then one (taps F x BHW) @ (BHW x C) GEMM over the whole padded input.
    shifted = jnp.stack([jnp.pad(grad_BxHxWxF, ((0, 0), (i, hp - h - i), (j, wp - w - j), (0, 0)))
                         for i in range(kh) for j in range(kw)])
    grad_kernel = jnp.einsum("tbhwf,bhwc->tfc", shifted, x_pad, precision=precision,
                             preferred_element_type=jnp.float32)
  else:
    # g^T x (F x C) is the fast orientation on XLA:CPU; x^T g (C x F) is ~4x slower.
    grad_kernel = jnp.stack([
        jnp.einsum("bhwf,bhwc->fc", grad_BxHxWxF, x_pad[:, i:i + h, j:j + w],
                   precision=precision, preferred_element_type=jnp.float32)
        for i in range(kh) for j in range(kw)])
  grad_kernel = grad_kernel.reshape(kh, kw, features, c).transpose(0, 1, 3, 2)
  return grad_x, grad_kernel.astype(kernel.dtype)


narrow_conv.defvjp(_narrow_conv_fwd, _narrow_conv_bwd)
