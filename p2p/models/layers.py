"""pix2pix's building blocks: convs with flax.linen's parameters, norms and initializers.

The convs own their parameters (named as flax.linen.Conv / ConvTranspose name them) and leave
the arithmetic to p2p.ops, which picks the fastest equal kernel for the shape.
"""

from __future__ import annotations

from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax.linen.dtypes import promote_dtype
from flax.typing import Dtype, Initializer

from p2p.ops import KernelOptions, conv2d, conv_transpose2d

NORMS = ("batch", "instance", "none")
UPSAMPLES = ("transposed", "resize")

conv_init = nn.initializers.normal(0.02)

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
  kernel = layer.param("kernel", conv_init, (k, k, x_BxHxWxC.shape[-1], layer.features),
                       jnp.float32)
  bias = (layer.param("bias", nn.initializers.zeros, (layer.features,), jnp.float32)
          if layer.use_bias else None)
  return promote_dtype(x_BxHxWxC, kernel, bias, dtype=layer.dtype)

class Conv(nn.Module):
  """nn.Conv(features, (k, k), stride, padding (k - 1) // 2): same parameters and outputs."""
  features: int
  kernel_size: int
  stride: int = 1
  use_bias: bool = True
  dtype: Dtype = jnp.float32
  kernels: KernelOptions = KernelOptions()

  @nn.compact
  def __call__(self, x_BxHxWxC: jax.Array) -> jax.Array:
    """B x H x W x C -> B x H' x W' x features."""
    x_BxHxWxC, kernel, bias = _kernel_and_bias(self, x_BxHxWxC, self.kernel_size)
    y = conv2d(x_BxHxWxC, kernel, self.stride, self.kernels)
    return y if bias is None else y + bias

class ConvTranspose(nn.Module):
  """nn.ConvTranspose(features, (4, 4), (2, 2), 'SAME'): same parameters and outputs.

  upsample="resize": nearest 2x upsampling then a 3x3 conv (Odena et al., 2016: no checkerboard
  artifacts), whose 3x3 kernel runs as the equal 4x4 transposed conv (same FLOPs).
  """
  features: int
  use_bias: bool = True
  dtype: Dtype = jnp.float32
  upsample: str = "transposed"
  kernels: KernelOptions = KernelOptions()

  @nn.compact
  def __call__(self, x_BxHxWxC: jax.Array) -> jax.Array:
    """B x H x W x C -> B x 2H x 2W x features."""
    if self.upsample not in UPSAMPLES:
      raise ValueError(f"upsample={self.upsample!r} is not one of {UPSAMPLES}.")
    size = 3 if self.upsample == "resize" else 4
    x_BxHxWxC, kernel, bias = _kernel_and_bias(self, x_BxHxWxC, size)
    y = conv_transpose2d(x_BxHxWxC, kernel, self.kernels)
    return y if bias is None else y + bias

def check_norm(norm: str) -> None:
  """Raises a clear error for an unknown norm name."""
  if norm not in NORMS:
    raise ValueError(f"norm={norm!r} is not one of {NORMS}.")

def norm_layer(norm: str, train: bool, dtype: Dtype = jnp.float32,
               name: str | None = None) -> Callable[[jax.Array], jax.Array]:
  """PyTorch-equivalent BatchNorm2d / InstanceNorm2d (affine=False), or the identity."""
  check_norm(norm)
  if norm == "batch":
    return nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5,
                        scale_init=normal_init(1.0, 0.02), bias_init=nn.initializers.zeros,
                        dtype=dtype, name=name)
  if norm == "instance":
    return nn.InstanceNorm(epsilon=1e-5, use_scale=False, use_bias=False, dtype=dtype, name=name)
  return lambda x: x
