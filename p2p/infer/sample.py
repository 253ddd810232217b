"""Sampling a trained generator: batches (`sample`) and images of any size, by tiles.

    photos = p2p.sample(gen, maps_uint8)       # NHWC, any batch size -> same dtype convention
    photo = p2p.translate_image(gen, big_map_uint8)  # HxWx3 of any size -> HxWx3

Normalization at inference (`norm`):
- "batch" (default): BatchNorm uses each image's own statistics and dropout stays on, the
  pix2pix paper's test-time setting (it trains and tests at batch 1, so its generator has only
  ever seen per-image statistics; running averages of batch-1 statistics are a poor fit).
  Statistics are per image, so an image's output never depends on the rest of the batch.
- "nodropout": per-image statistics as in "batch", but dropout off (deterministic).
- "running": eval mode: BatchNorm running averages, no dropout (deterministic without a key).
Outputs are deterministic for a given PRNG key (default key 0).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from p2p.data.images import to_uint8
from p2p.data.transforms import tile_starts
from p2p.models import UNetGenerator

NORM_MODES = ("batch", "nodropout", "running")


@dataclasses.dataclass(frozen=True)
class Generator:
  """A trained generator: module, variables, the size it was trained at, and its provenance."""

  module: UNetGenerator
  variables: dict[str, Any]  # {"params": ..., "batch_stats": ...}
  image_size: int
  direction: str = "map_to_satellite"
  step: int = 0
  data_dir: str = ""  # the dataset the run trained on (evaluation's default)
  ema: bool = False  # variables hold the run's averaged weights (optim.ema_decay > 0)
  preprocess: str = "patches"  # how training cut its inputs (evaluation's default protocol)


def _as_float(batch: np.ndarray | jax.Array) -> tuple[jax.Array, bool]:
  """NHWC uint8 [0, 255] or float [-1, 1] -> float32 [-1, 1], and whether it was uint8."""
  batch = jnp.asarray(batch)
  if batch.ndim != 4 or batch.shape[-1] != 3:
    raise ValueError(f"sample() takes NHWC RGB batches; got shape {batch.shape}. Add a batch "
                     f"axis with x[None] or convert to RGB.")
  if batch.dtype == jnp.uint8:
    return batch.astype(jnp.float32) / 127.5 - 1.0, True
  return batch.astype(jnp.float32), False


@functools.lru_cache(maxsize=16)
def _predict_fn(module: UNetGenerator, norm: str) -> Callable:
  """Jitted (variables, x_BxHxWx3, rng) -> G(x), each image with its own statistics."""
  if norm not in NORM_MODES:
    raise ValueError(f"norm={norm!r} is not one of {NORM_MODES}.")

  def one(variables, x_HxWx3, rng):
    if norm == "running":
      return module.apply(variables, x_HxWx3[None], train=False, dropout=False)[0]
    out, _ = module.apply(variables, x_HxWx3[None], train=True, dropout=norm == "batch",
                          rngs={"dropout": rng}, mutable=["batch_stats"])
    return out[0]

  @jax.jit
  def predict(variables, x_BxHxWx3, rng, offset):
    keys = jax.vmap(lambda i: jax.random.fold_in(rng, i))(offset + jnp.arange(len(x_BxHxWx3)))
    return jax.vmap(one, in_axes=(None, 0, 0))(variables, x_BxHxWx3, keys)

  return predict


def sample(gen: Generator, batch: np.ndarray | jax.Array, *, rng: jax.Array | None = None,
           norm: str = "batch", chunk: int = 16) -> np.ndarray:
  """Satellite images for a batch of maps: uint8 in -> uint8 out, float [-1, 1] -> float32.

  Image i uses the key fold_in(rng, i), so results do not depend on `chunk`.
  """
  x, was_uint8 = _as_float(batch)
  predict = _predict_fn(gen.module, norm)
  rng = jax.random.PRNGKey(0) if rng is None else rng
  outs = [predict(gen.variables, x[i:i + chunk], rng, i) for i in range(0, len(x), chunk)]
  out = jnp.concatenate(outs) if outs else jnp.zeros_like(x)
  return to_uint8(np.asarray(out)) if was_uint8 else np.asarray(out, np.float32)


def blend_window(size: int, overlap: int) -> np.ndarray:
  """(size, size) weights: 1 inside, a linear ramp to 1/(overlap+1) over `overlap` edge pixels."""
  ramp = np.ones(size, np.float32)
  if overlap > 0:
    edge = np.arange(1, overlap + 1, dtype=np.float32) / (overlap + 1)
    ramp[:overlap] = edge
    ramp[size - overlap:] = np.minimum(ramp[size - overlap:], edge[::-1])
  return np.outer(ramp, ramp)


def translate_image(gen: Generator, image: np.ndarray, *, overlap: int | None = None,
              rng: jax.Array | None = None, norm: str = "batch", chunk: int = 16) -> np.ndarray:
  """A whole map (H x W x 3 uint8, any size) -> its satellite image, tiled and blended.

  Smaller than the model size: reflect-padded, translated, cropped back. Larger: tiles of the
  model size every (size - overlap) pixels (the last flush with the edge), each weighted by a
  window that fades over the overlap, so seams blend away. Exactly the model size: one tile.
  The default overlap, half the model size, makes the windows a 50%-overlapping triangle
  (Bartlett) cross-fade: measured on a model with per-tile statistics, pixel jumps across seam
  lines are then no larger than inside tiles, while a quarter overlap leaves them 1.7x larger.
  """
  image = np.asarray(image)
  if image.ndim != 3 or image.shape[-1] != 3 or image.dtype != np.uint8:
    raise ValueError(f"translate_image() takes an H x W x 3 uint8 image; got {image.shape} "
                     f"{image.dtype}.")
  size = gen.image_size
  overlap = size // 2 if overlap is None else overlap
  if not 0 <= overlap < size:
    raise ValueError(f"overlap={overlap} must be in [0, {size}) (the model size).")
  height, width = image.shape[:2]
  padded = np.pad(image, ((0, max(size - height, 0)), (0, max(size - width, 0)), (0, 0)),
                  mode="reflect" if min(height, width) > 1 else "edge")
  tops = tile_starts(padded.shape[0], size, "cover", size - overlap)
  lefts = tile_starts(padded.shape[1], size, "cover", size - overlap)
  boxes = [(top, left) for top in tops for left in lefts]
  tiles = np.stack([padded[t:t + size, l:l + size] for t, l in boxes])
  out = sample(gen, tiles, rng=rng, norm=norm, chunk=chunk).astype(np.float32)
  window = blend_window(size, overlap if len(boxes) > 1 else 0)[..., None]
  total = np.zeros(padded.shape, np.float32)
  weight = np.zeros(padded.shape[:2] + (1,), np.float32)
  for (top, left), tile in zip(boxes, out):
    total[top:top + size, left:left + size] += window * tile
    weight[top:top + size, left:left + size] += window
  result = np.clip(np.rint(total / weight), 0, 255).astype(np.uint8)
  return result[:height, :width]
