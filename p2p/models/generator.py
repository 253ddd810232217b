"""The pix2pix U-Net generator (PyTorch UnetGenerator), for any power-of-two image size."""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax.typing import Dtype

from p2p.models.layers import Conv, ConvTranspose, check_norm, norm_layer, use_bias
from p2p.ops import KernelOptions

MIN_NUM_DOWNS = 5  # the 4 outer levels plus the innermost, as PyTorch always builds
FIRST_DROPOUT_DEPTH = 5  # the ngf*8 levels between depth 4 and the innermost carry dropout


def resolve_num_downs(height: int, width: int, num_downs: int | None = None) -> int:
  """Number of stride-2 levels: log2 of the image size unless given; validates the size."""
  if num_downs is None:
    size = min(height, width)
    if size < 2 ** MIN_NUM_DOWNS or size & (size - 1):
      raise ValueError(f"UNetGenerator needs a power-of-two image size of at least "
                       f"{2 ** MIN_NUM_DOWNS} px; got {height}x{width}. Resize or crop the "
                       f"images, or set num_downs.")
    num_downs = int(math.log2(size))
  if num_downs < MIN_NUM_DOWNS:
    raise ValueError(f"UNetGenerator num_downs={num_downs} is below the minimum "
                     f"{MIN_NUM_DOWNS}.")
  if height % 2 ** num_downs or width % 2 ** num_downs:
    raise ValueError(f"UNetGenerator with num_downs={num_downs} needs an image size divisible "
                     f"by {2 ** num_downs}; got {height}x{width}.")
  return num_downs


def level_channels(ngf: int, depth: int) -> int:
  """Output channels of the down conv at depth 1..D: ngf, 2ngf, 4ngf, then 8ngf."""
  return ngf * min(2 ** (depth - 1), 8)


class Down(nn.Module):
  """LeakyReLU -> 4x4 stride-2 conv -> norm; no activation when outermost, no norm at the ends."""
  features: int
  norm: str = "batch"
  outermost: bool = False
  innermost: bool = False
  dtype: Dtype = jnp.float32
  kernels: KernelOptions = KernelOptions()

  @nn.compact
  def __call__(self, x_BxHxWxC: jax.Array, train: bool) -> jax.Array:
    """B x H x W x C -> B x H/2 x W/2 x features."""
    x = x_BxHxWxC if self.outermost else nn.leaky_relu(x_BxHxWxC, 0.2)
    x = Conv(self.features, 4, 2, use_bias(self.norm), self.dtype, self.kernels, name="conv")(x)
    if self.outermost or self.innermost:
      return x
    return norm_layer(self.norm, train, self.dtype, name="norm")(x)


class Up(nn.Module):
  """ReLU -> 4x4 stride-2 transposed (or resize) conv -> norm [-> dropout]; tanh when outermost."""
  features: int
  norm: str = "batch"
  outermost: bool = False
  dropout_rate: float = 0.0
  upsample: str = "transposed"
  dtype: Dtype = jnp.float32
  kernels: KernelOptions = KernelOptions()

  @nn.compact
  def __call__(self, x_BxHxWxC: jax.Array, train: bool, dropout: bool) -> jax.Array:
    """B x H x W x C -> B x 2H x 2W x features."""
    x = nn.relu(x_BxHxWxC)
    bias = self.outermost or use_bias(self.norm)
    x = ConvTranspose(self.features, bias, self.dtype, self.upsample, self.kernels,
                      name="conv")(x)
    if self.outermost:
      return jnp.tanh(x)
    x = norm_layer(self.norm, train, self.dtype, name="norm")(x)
    if self.dropout_rate > 0:
      x = nn.Dropout(self.dropout_rate, deterministic=not dropout)(x)
    return x


class UNetGenerator(nn.Module):
  """pix2pix U-Net: D stride-2 levels down to 1x1 and back, skips concatenated as [skip, up]."""
  ngf: int = 64
  out_channels: int = 3
  norm: str = "batch"
  dropout_rate: float = 0.5
  num_downs: int | None = None
  upsample: str = "transposed"  # or "resize": nearest 2x + 3x3 conv in every up block
  dtype: Dtype = jnp.float32
  kernels: KernelOptions = KernelOptions()

  @nn.compact
  def __call__(self, x_BxHxWxC: jax.Array, train: bool,
               dropout: bool | None = None) -> jax.Array:
    """B x H x W x C in [-1, 1] -> B x H x W x out_channels float32 in [-1, 1].

    dropout defaults to train; pix2pix also samples dropout at test time (dropout=True).
    """
    check_norm(self.norm)
    depth = resolve_num_downs(x_BxHxWxC.shape[1], x_BxHxWxC.shape[2], self.num_downs)
    dropout = train if dropout is None else dropout
    x = jnp.asarray(x_BxHxWxC, self.dtype)
    skips = []
    for i in range(1, depth + 1):
      x = Down(level_channels(self.ngf, i), self.norm, outermost=i == 1, innermost=i == depth,
               dtype=self.dtype, kernels=self.kernels, name=f"down_{i}")(x, train)
      skips.append(x)
    for i in range(depth, 0, -1):
      if i < depth:
        x = jnp.concatenate([skips[i - 1], x], axis=-1)
      features = self.out_channels if i == 1 else level_channels(self.ngf, i - 1)
      rate = self.dropout_rate if FIRST_DROPOUT_DEPTH <= i < depth else 0.0
      x = Up(features, self.norm, outermost=i == 1, dropout_rate=rate, upsample=self.upsample,
             dtype=self.dtype, kernels=self.kernels, name=f"up_{i}")(x, train, dropout)
    return x.astype(jnp.float32)
