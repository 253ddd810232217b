"""Shared layers: a fast 4x4 stride-2 transposed conv, pix2pix convs, norms and initializers."""

from __future__ import annotations

from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax.linen.dtypes import promote_dtype
from flax.typing import Dtype, Initializer, PrecisionLike
from jax import lax

NORMS = ("batch", "instance", "none")
CONV_TRANSPOSE_IMPLS = ("phase", "flax")
DIMENSION_NUMBERS = ("NHWC", "HWIO", "NHWC")
# Output phase r of a 4x4 stride-2 'SAME' transposed conv reads x[t-1], x[t] (r=0) or x[t], x[t+1]
# (r=1) through the kernel taps k[r::2]: pad one before (r=0) or one after (r=1).
PHASE_PADDING = ((1, 0), (0, 1))

conv_init = nn.initializers.normal(0.02)


def normal_init(mean: float, stddev: float) -> Initializer:
  """N(mean, stddev) initializer: pix2pix's BatchNorm scale is N(1, 0.02)."""
  def init(key: jax.Array, shape: tuple[int, ...], dtype: Dtype = jnp.float32) -> jax.Array:
    return mean + stddev * jax.random.normal(key, shape, dtype)
  return init


def use_bias(norm: str) -> bool:
  """Convs followed by BatchNorm carry no bias (PyTorch: bias iff not BatchNorm)."""
  return norm != "batch"


def phase_conv_transpose(x_BxHxWxC: jax.Array, kernel_4x4xCxF: jax.Array,
                         precision: PrecisionLike = None) -> jax.Array:
  """lax.conv_transpose(x, k, (2, 2), 'SAME') as four stride-1 2x2 convs, interleaved."""
  b, h, w, _ = x_BxHxWxC.shape
  features = kernel_4x4xCxF.shape[-1]
  rows = []
  for ry in (0, 1):
    cols = [lax.conv_general_dilated(
        x_BxHxWxC, kernel_4x4xCxF[ry::2, rx::2], window_strides=(1, 1),
        padding=(PHASE_PADDING[ry], PHASE_PADDING[rx]), dimension_numbers=DIMENSION_NUMBERS,
        precision=precision) for rx in (0, 1)]
    rows.append(jnp.stack(cols, axis=3))  # B x H x W x 2(rx) x F
  y_BxHx2xWx2xF = jnp.stack(rows, axis=2)
  return y_BxHx2xWx2xF.reshape(b, 2 * h, 2 * w, features)


class PhaseConvTranspose(nn.Module):
  """nn.ConvTranspose(features, (4, 4), (2, 2), 'SAME') with the same params, fast on XLA:CPU."""
  features: int
  use_bias: bool = True
  kernel_init: Initializer = conv_init
  bias_init: Initializer = nn.initializers.zeros
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32
  precision: PrecisionLike = None

  @nn.compact
  def __call__(self, x_BxHxWxC: jax.Array) -> jax.Array:
    """B x H x W x C -> B x 2H x 2W x features."""
    kernel = self.param("kernel", self.kernel_init,
                        (4, 4, x_BxHxWxC.shape[-1], self.features), self.param_dtype)
    bias = (self.param("bias", self.bias_init, (self.features,), self.param_dtype)
            if self.use_bias else None)
    x_BxHxWxC, kernel, bias = promote_dtype(x_BxHxWxC, kernel, bias, dtype=self.dtype)
    y = phase_conv_transpose(x_BxHxWxC, kernel, self.precision)
    return y if bias is None else y + bias


def conv_transpose(features: int, use_bias: bool, impl: str = "phase",
                   dtype: Dtype = jnp.float32, name: str | None = None) -> nn.Module:
  """A 4x4 stride-2 'SAME' transposed conv; both impls share one parameter tree."""
  if impl == "phase":
    return PhaseConvTranspose(features, use_bias=use_bias, dtype=dtype, name=name)
  if impl == "flax":
    return nn.ConvTranspose(features, (4, 4), strides=(2, 2), padding="SAME", use_bias=use_bias,
                            kernel_init=conv_init, bias_init=nn.initializers.zeros, dtype=dtype,
                            name=name)
  raise ValueError(f"conv_transpose_impl={impl!r} is not one of {CONV_TRANSPOSE_IMPLS}.")


def conv(features: int, kernel_size: int, stride: int, use_bias: bool,
         dtype: Dtype = jnp.float32, name: str | None = None) -> nn.Conv:
  """A square conv with pix2pix's padding (k - 1) // 2: 1 for 4x4, 0 for 1x1."""
  pad = (kernel_size - 1) // 2
  return nn.Conv(features, (kernel_size, kernel_size), strides=(stride, stride),
                 padding=((pad, pad), (pad, pad)), use_bias=use_bias, kernel_init=conv_init,
                 bias_init=nn.initializers.zeros, dtype=dtype, name=name)


def check_norm(norm: str) -> None:
  """Raises a clear error for an unknown norm name."""
  if norm not in NORMS:
    raise ValueError(f"norm={norm!r} is not one of {NORMS}.")


def norm_layer(norm: str, train: bool, dtype: Dtype = jnp.float32,
               name: str | None = None) -> Callable[[jax.Array], jax.Array]:
  """PyTorch-equivalent BatchNorm2d / InstanceNorm2d (affine=False), or identity for 'none'."""
  check_norm(norm)
  if norm == "batch":
    return nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5,
                        scale_init=normal_init(1.0, 0.02), bias_init=nn.initializers.zeros,
                        dtype=dtype, name=name)
  if norm == "instance":
    return nn.InstanceNorm(epsilon=1e-5, use_scale=False, use_bias=False, dtype=dtype, name=name)
  return lambda x: x
