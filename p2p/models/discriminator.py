"""PatchGAN discriminators chosen by receptive field (PyTorch NLayer/PixelDiscriminator).

Each block's activation is sown into the "intermediates" collection as "features" (a no-op
unless that collection is mutable), for pix2pixHD's feature-matching loss. pix2pixHD's
multi-scale discriminator runs one PatchGAN per scale on ever coarser copies of the input.
spectral_norm wraps every conv in flax's SpectralNorm (Miyato et al., 2018): its power-iteration
vectors live in "batch_stats", so the train step keeps them as it keeps BatchNorm's statistics.
"""

from __future__ import annotations

from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax.typing import Dtype

from p2p.models.layers import Conv, check_norm, norm_layer, use_bias
from p2p.ops import KernelOptions

# Receptive field (px) -> number of stride-2 layers of PyTorch's NLayerDiscriminator; 1 = pixel.
N_LAYERS = {1: 0, 16: 1, 34: 2, 70: 3, 142: 4, 286: 5}
RECEPTIVE_FIELDS = tuple(N_LAYERS)


def _down(n: int) -> int:
  """Output size of a 4x4 stride-2 conv with padding 1."""
  return (n - 2) // 2 + 1


def patch_output_size(size: int, receptive_field: int) -> int:
  """Logit-map size for an input side of `size` px; 0 or less means the input is too small."""
  if receptive_field not in N_LAYERS:
    raise ValueError(f"receptive_field={receptive_field} is not one of {tuple(N_LAYERS)}.")
  if receptive_field == 1:
    return size
  for _ in range(N_LAYERS[receptive_field]):
    size = _down(size)
    if size < 1:
      return size
  return size - 2  # two 4x4 stride-1 convs with padding 1


def min_input_size(receptive_field: int) -> int:
  """Smallest input side that gives at least a 1x1 logit map."""
  size = 1
  while patch_output_size(size, receptive_field) < 1:
    size += 1
  return size


class PatchDiscriminator(nn.Module):
  """Conditional PatchGAN: logits (no sigmoid) for each receptive_field x receptive_field patch."""
  receptive_field: int = 70
  ndf: int = 64
  norm: str = "batch"
  dtype: Dtype = jnp.float32
  spectral_norm: bool = False
  kernels: KernelOptions = KernelOptions()

  @nn.compact
  def __call__(self, x_BxHxWxC: jax.Array, train: bool) -> jax.Array:
    """B x H x W x C (condition and image concatenated) -> B x h x w x 1 float32 logits."""
    check_norm(self.norm)
    height, width = x_BxHxWxC.shape[1:3]
    if min(patch_output_size(height, self.receptive_field),
           patch_output_size(width, self.receptive_field)) < 1:
      raise ValueError(f"PatchDiscriminator(receptive_field={self.receptive_field}) needs inputs "
                       f"of at least {min_input_size(self.receptive_field)} px; got "
                       f"{height}x{width}.")
    x = jnp.asarray(x_BxHxWxC, self.dtype)
    if self.receptive_field == 1:
      return self._pixel(x, train).astype(jnp.float32)
    return self._patch(x, train, N_LAYERS[self.receptive_field]).astype(jnp.float32)

  def _conv(self, features: int, kernel_size: int, stride: int, bias: bool, name: str,
            train: bool) -> Callable[[jax.Array], jax.Array]:
    layer = Conv(features, kernel_size, stride, bias, self.dtype, self.kernels, name=name)
    if not self.spectral_norm:
      return layer
    return lambda x: nn.SpectralNorm(layer, name=f"sn_{name}")(x, update_stats=train)

  def _patch(self, x: jax.Array, train: bool, n_layers: int) -> jax.Array:
    """NLayerDiscriminator: n_layers stride-2 convs, then two stride-1 convs."""
    bias = use_bias(self.norm)
    x = nn.leaky_relu(self._conv(self.ndf, 4, 2, True, "conv_0", train)(x), 0.2)
    self.sow("intermediates", "features", x)
    for n in range(1, n_layers + 1):
      stride = 2 if n < n_layers else 1
      x = self._conv(self.ndf * min(2 ** n, 8), 4, stride, bias, f"conv_{n}", train)(x)
      x = norm_layer(self.norm, train, self.dtype, name=f"norm_{n}")(x)
      x = nn.leaky_relu(x, 0.2)
      self.sow("intermediates", "features", x)
    return self._conv(1, 4, 1, True, f"conv_{n_layers + 1}", train)(x)

  def _pixel(self, x: jax.Array, train: bool) -> jax.Array:
    """PixelDiscriminator: three 1x1 convs (a 1x1 receptive field)."""
    bias = use_bias(self.norm)
    x = nn.leaky_relu(self._conv(self.ndf, 1, 1, True, "conv_0", train)(x), 0.2)
    self.sow("intermediates", "features", x)
    x = self._conv(2 * self.ndf, 1, 1, bias, "conv_1", train)(x)
    x = nn.leaky_relu(norm_layer(self.norm, train, self.dtype, name="norm_1")(x), 0.2)
    self.sow("intermediates", "features", x)
    return self._conv(1, 1, 1, bias, "conv_2", train)(x)


def downsample(x_BxHxWxC: jax.Array) -> jax.Array:
  """pix2pixHD's 3x3 stride-2 average pool (padding 1, padded pixels not counted)."""
  return nn.avg_pool(x_BxHxWxC, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)),
                     count_include_pad=False)


def coarsest_size(size: int, num_scales: int) -> int:
  """Input side the coarsest of num_scales discriminators sees (each scale halves, rounding up)."""
  for _ in range(num_scales - 1):
    size = (size + 1) // 2
  return size


class MultiScaleDiscriminator(nn.Module):
  """pix2pixHD's num_scales PatchGANs, scale_k on the input pooled k times; a tuple of logits.

  scale_0 sees the full-size pair; each later one a 2x average-pooled copy, so the same
  receptive field covers twice the image. Losses sum over the tuple, as pix2pixHD does.
  """
  num_scales: int = 2
  receptive_field: int = 70
  ndf: int = 64
  norm: str = "batch"
  dtype: Dtype = jnp.float32
  spectral_norm: bool = False
  kernels: KernelOptions = KernelOptions()

  @nn.compact
  def __call__(self, x_BxHxWxC: jax.Array, train: bool) -> tuple[jax.Array, ...]:
    """B x H x W x C -> num_scales logit maps, finest first."""
    if self.num_scales < 1:
      raise ValueError(f"MultiScaleDiscriminator needs num_scales >= 1; got {self.num_scales}.")
    logits = []
    for k in range(self.num_scales):
      if k:
        x_BxHxWxC = downsample(x_BxHxWxC)
      logits.append(PatchDiscriminator(self.receptive_field, self.ndf, self.norm, self.dtype,
                                       self.spectral_norm, self.kernels,
                                       name=f"scale_{k}")(x_BxHxWxC, train))
    return tuple(logits)
