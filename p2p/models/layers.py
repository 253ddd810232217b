"""Shared layers: a fast 4x4 stride-2 transposed conv, pix2pix convs, norms and initializers."""

from __future__ import annotations

from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax.linen.dtypes import promote_dtype
from flax.typing import Dtype, Initializer, PrecisionLike

from p2p.config import CONV_TRANSPOSE_IMPLS, NORMS, UPSAMPLES
from p2p.models.kernels import (NARROW_FEATURES, lax_conv, matmul_conv_s2, matmul_conv_transpose,
                                narrow_conv, nearest_up_kernel, phase_conv_transpose, s2_conv,
                                winograd_conv, winograd_tiles)

# 4x4 stride-2 convs whose larger side (input or output) is at most this many px run as
# patch extraction + one GEMM (kernels.matmul_*): faster on XLA:CPU, same params and outputs.
MATMUL_MAX_SIZE = 16

conv_init = nn.initializers.normal(0.02)


def cpu_rewrites() -> bool:
  """Whether the XLA:CPU-only conv forms (s2_conv, winograd_conv) apply: a CPU backend."""
  return jax.default_backend() == "cpu"


def normal_init(mean: float, stddev: float) -> Initializer:
  """N(mean, stddev) initializer: pix2pix's BatchNorm scale is N(1, 0.02)."""
  def init(key: jax.Array, shape: tuple[int, ...], dtype: Dtype = jnp.float32) -> jax.Array:
    return mean + stddev * jax.random.normal(key, shape, dtype)
  return init


def use_bias(norm: str) -> bool:
  """Convs followed by BatchNorm carry no bias (PyTorch: bias iff not BatchNorm)."""
  return norm != "batch"


def _kernel_and_bias(layer: nn.Module, x_BxHxWxC: jax.Array, k: int
                     ) -> tuple[jax.Array, jax.Array, jax.Array | None]:
  """A conv layer's HWIO kernel and optional bias (flax.linen's names), x and both in dtype."""
  kernel = layer.param("kernel", layer.kernel_init, (k, k, x_BxHxWxC.shape[-1], layer.features),
                       layer.param_dtype)
  bias = (layer.param("bias", layer.bias_init, (layer.features,), layer.param_dtype)
          if layer.use_bias else None)
  return promote_dtype(x_BxHxWxC, kernel, bias, dtype=layer.dtype)


class PhaseConvTranspose(nn.Module):
  """nn.ConvTranspose(features, (4, 4), (2, 2), 'SAME') with the same params, fast on XLA:CPU.

  upsample="resize": nearest 2x upsampling then a 3x3 conv (Odena et al., 2016: no checkerboard
  artifacts), with a 3x3 kernel param run as the equal 4x4 transposed conv (same FLOPs).
  """
  features: int
  use_bias: bool = True
  kernel_init: Initializer = conv_init
  bias_init: Initializer = nn.initializers.zeros
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32
  precision: PrecisionLike = None
  matmul_max_size: int = MATMUL_MAX_SIZE
  upsample: str = "transposed"

  @nn.compact
  def __call__(self, x_BxHxWxC: jax.Array) -> jax.Array:
    """B x H x W x C -> B x 2H x 2W x features."""
    if self.upsample not in UPSAMPLES:
      raise ValueError(f"upsample={self.upsample!r} is not one of {UPSAMPLES}.")
    resize = self.upsample == "resize"
    x_BxHxWxC, kernel, bias = _kernel_and_bias(self, x_BxHxWxC, 3 if resize else 4)
    kernel = nearest_up_kernel(kernel) if resize else kernel
    small = 2 * max(x_BxHxWxC.shape[1:3]) <= self.matmul_max_size
    impl = matmul_conv_transpose if small else phase_conv_transpose
    y = impl(x_BxHxWxC, kernel, self.precision)
    return y if bias is None else y + bias


class Conv(nn.Module):
  """nn.Conv(features, (k, k), stride, padding (k - 1) // 2) with the same params, fast on CPU.

  On a CPU backend 4x4 stride-2 convs (above matmul_max_size) get s2_conv's input gradient, and
  float32 4x4 stride-1 convs with at least winograd_min_tiles output tiles run as Winograd.
  """
  features: int
  kernel_size: int
  stride: int = 1
  use_bias: bool = True
  kernel_init: Initializer = conv_init
  bias_init: Initializer = nn.initializers.zeros
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32
  precision: PrecisionLike = None
  matmul_max_size: int = MATMUL_MAX_SIZE
  narrow: bool = True  # False: no custom_vjp convs, so jax.jvp can differentiate it (R1)
  winograd_min_tiles: int = 0  # 4x4 stride-1 convs with this many output tiles: Winograd; 0 = never

  @nn.compact
  def __call__(self, x_BxHxWxC: jax.Array) -> jax.Array:
    """B x H x W x C -> B x H' x W' x features."""
    k, stride = self.kernel_size, self.stride
    x_BxHxWxC, kernel, bias = _kernel_and_bias(self, x_BxHxWxC, k)
    pad = (k - 1) // 2
    padding = ((pad, pad), (pad, pad))
    height, width = x_BxHxWxC.shape[1:3]
    down = (k, stride, pad) == (4, 2, 1) and height % 2 == 0 and width % 2 == 0
    if down and max(height, width) <= self.matmul_max_size:
      y = matmul_conv_s2(x_BxHxWxC, kernel, self.precision)
    elif down and self.narrow and cpu_rewrites():
      y = s2_conv(x_BxHxWxC, kernel, self.precision)
    elif (stride, k) == (1, 4) and self.features > NARROW_FEATURES and cpu_rewrites() and (
        x_BxHxWxC.dtype == jnp.float32) and 0 < (  # bf16 would amplify Winograd's rounding
        self.winograd_min_tiles) <= winograd_tiles(x_BxHxWxC.shape[0], height, width, padding):
      y = winograd_conv(x_BxHxWxC, kernel, padding, self.precision)
    elif self.narrow and stride == 1 and k > 1 and self.features <= NARROW_FEATURES:
      y = narrow_conv(x_BxHxWxC, kernel, padding, self.precision)
    else:
      y = lax_conv(x_BxHxWxC, kernel, (stride, stride), padding, self.precision)
    return y if bias is None else y + bias


def conv_transpose(features: int, use_bias: bool, impl: str = "phase",
                   dtype: Dtype = jnp.float32, name: str | None = None,
                   matmul_max_size: int = MATMUL_MAX_SIZE,
                   upsample: str = "transposed") -> nn.Module:
  """A 4x4 stride-2 'SAME' transposed conv (both impls share one parameter tree), or resize-conv."""
  if impl == "phase" or upsample != "transposed":
    return PhaseConvTranspose(features, use_bias=use_bias, dtype=dtype, name=name,
                              matmul_max_size=matmul_max_size, upsample=upsample)
  if impl == "flax":
    return nn.ConvTranspose(features, (4, 4), strides=(2, 2), padding="SAME", use_bias=use_bias,
                            kernel_init=conv_init, bias_init=nn.initializers.zeros, dtype=dtype,
                            name=name)
  raise ValueError(f"conv_transpose_impl={impl!r} is not one of {CONV_TRANSPOSE_IMPLS}.")


def conv(features: int, kernel_size: int, stride: int, use_bias: bool,
         dtype: Dtype = jnp.float32, name: str | None = None,
         matmul_max_size: int = MATMUL_MAX_SIZE, narrow: bool = True,
         winograd_min_tiles: int = 0) -> Conv:
  """A square conv with pix2pix's padding (k - 1) // 2: 1 for 4x4, 0 for 1x1."""
  return Conv(features, kernel_size, stride, use_bias=use_bias, dtype=dtype, name=name,
              matmul_max_size=matmul_max_size, narrow=narrow,
              winograd_min_tiles=winograd_min_tiles)


def check_norm(norm: str) -> None:
  """Raises a clear error for an unknown norm name."""
  if norm not in NORMS:
    raise ValueError(f"norm={norm!r} is not one of {NORMS}.")


def norm_layer(norm: str, train: bool, dtype: Dtype = jnp.float32,
               name: str | None = None) -> Callable[[jax.Array], jax.Array]:
  """PyTorch-equivalent BatchNorm2d / InstanceNorm2d (affine=False), pixel norm, or identity.

  pixel: ProGAN's pixelwise feature normalisation (Karras et al., 2018), each pixel's feature
  vector divided by its RMS (flax's RMSNorm over channels, no parameters). It uses no spatial
  statistics, so G cannot steer it with a bright spot, the source of StyleGAN's blob artifacts.
  """
  check_norm(norm)
  if norm == "batch":
    return nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5,
                        scale_init=normal_init(1.0, 0.02), bias_init=nn.initializers.zeros,
                        dtype=dtype, name=name)
  if norm == "instance":
    return nn.InstanceNorm(epsilon=1e-5, use_scale=False, use_bias=False, dtype=dtype, name=name)
  if norm == "pixel":
    return nn.RMSNorm(epsilon=1e-8, use_scale=False, dtype=dtype, name=name)
  return lambda x: x
