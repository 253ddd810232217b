"""DiffAugment (Zhao et al., 2020): differentiable augmentation of D's inputs, real and fake alike.

D sees every (input, output) pair, real or generated, through the same random transforms, and
G's gradients flow back through them, so D cannot memorise the few training images while the
transforms never leak into G's outputs. The spatial transforms move the map and the photo of a
pair together; colour changes each image of the pair by the same factors. Images are in [-1, 1]
and channels-last; the pair is D's input, the two images concatenated on the channel axis.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

TRANSLATION_RATIO = 0.125  # shift of up to 1/8 of the side, zero (grey) filled, as DiffAugment
CUTOUT_RATIO = 0.5  # a zeroed square of half the side, anywhere (clipped at the border)


def _per_image(x_BxHxWxC: jax.Array) -> jax.Array:
  """B x H x W x C (C a multiple of 3) -> B x H x W x (C/3) x 3: one RGB image per group."""
  b, h, w, c = x_BxHxWxC.shape
  if c % 3:
    raise ValueError(f"colour augmentation needs RGB images stacked on channels; got {c}.")
  return x_BxHxWxC.reshape(b, h, w, c // 3, 3)


def color(x_BxHxWxC: jax.Array, key: jax.Array) -> jax.Array:
  """Brightness, saturation and contrast, each drawn per example and shared by its images."""
  b, h, w, c = x_BxHxWxC.shape
  kb, ks, kc = jax.random.split(key, 3)
  u = lambda k: jax.random.uniform(k, (b, 1, 1, 1, 1), x_BxHxWxC.dtype)
  x = _per_image(x_BxHxWxC)
  x = x + (u(kb) - 0.5)
  grey = x.mean(axis=-1, keepdims=True)
  x = (x - grey) * (u(ks) * 2.0) + grey
  mean = x.mean(axis=(1, 2, 4), keepdims=True)
  x = (x - mean) * (u(kc) + 0.5) + mean
  return x.reshape(b, h, w, c)


def translation(x_BxHxWxC: jax.Array, key: jax.Array) -> jax.Array:
  """Shifts each example by up to TRANSLATION_RATIO of its side in y and x, filling with 0."""
  b, h, w, c = x_BxHxWxC.shape
  sy, sx = int(h * TRANSLATION_RATIO + 0.5), int(w * TRANSLATION_RATIO + 0.5)
  ky, kx = jax.random.split(key)
  dy = jax.random.randint(ky, (b,), -sy, sy + 1)
  dx = jax.random.randint(kx, (b,), -sx, sx + 1)
  padded = jnp.pad(x_BxHxWxC, ((0, 0), (sy, sy), (sx, sx), (0, 0)))
  # Output pixel (i, j) is input pixel (i - dy, j - dx): the content moves by (+dy, +dx).
  cut = lambda img, oy, ox: jax.lax.dynamic_slice(img, (sy - oy, sx - ox, 0), (h, w, c))
  return jax.vmap(cut)(padded, dy, dx)


def cutout(x_BxHxWxC: jax.Array, key: jax.Array) -> jax.Array:
  """Zeroes one CUTOUT_RATIO-sided square per example, centred anywhere in the image."""
  b, h, w, _ = x_BxHxWxC.shape
  ch, cw = int(h * CUTOUT_RATIO + 0.5), int(w * CUTOUT_RATIO + 0.5)
  ky, kx = jax.random.split(key)
  # DiffAugment's offsets: the square's centre in [0, side + (1 - size % 2)).
  cy = jax.random.randint(ky, (b, 1, 1, 1), 0, h + (1 - ch % 2))
  cx = jax.random.randint(kx, (b, 1, 1, 1), 0, w + (1 - cw % 2))
  rows = jnp.arange(h)[None, :, None, None] - (cy - ch // 2)
  cols = jnp.arange(w)[None, None, :, None] - (cx - cw // 2)
  inside = (rows >= 0) & (rows < ch) & (cols >= 0) & (cols < cw)
  return jnp.where(inside, jnp.zeros_like(x_BxHxWxC), x_BxHxWxC)


TRANSFORMS: dict[str, Callable[[jax.Array, jax.Array], jax.Array]] = {
    "color": color, "translation": translation, "cutout": cutout}


def parse_policy(policy: str) -> tuple[str, ...]:
  """'color,translation,cutout' -> its transform names in order; '' -> () (no augmentation)."""
  names = tuple(name.strip() for name in policy.split(",") if name.strip())
  unknown = [name for name in names if name not in TRANSFORMS]
  if unknown or len(set(names)) != len(names):
    raise ValueError(f"DiffAugment policy {policy!r}: use each of {tuple(TRANSFORMS)} at most "
                     f"once, comma-separated ('' = none).")
  return names


def diff_augment(pair_BxHxWxC: jax.Array, key: jax.Array, policy: tuple[str, ...]) -> jax.Array:
  """The policy's transforms in order, each with its own key; () returns the input itself."""
  for name, k in zip(policy, jax.random.split(key, max(len(policy), 1))):
    pair_BxHxWxC = TRANSFORMS[name](pair_BxHxWxC, k)
  return pair_BxHxWxC
