"""Sampling a trained generator: batches (`sample`) and images of any size, by tiles.

    photos = p2p.sample(gen, maps_uint8)       # NHWC, any batch size -> same dtype convention
    photo = p2p.translate_image(gen, big_map)  # H x W x C of any size and dtype -> the target's

Values: integer inputs (uint8, uint16, ...) are scaled from the run's recorded input range and
outputs returned in the target's dtype and range (exactly undoing training's scaling); float
inputs to `sample` are taken as already in [-1, 1] and the output stays there.
`translate_image` takes images as read from files, floats included, and returns the same kind.

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

from p2p.config import DataConfig
from p2p.data.folder import orient
from p2p.data.values import from_unit, to_unit, value_range
from p2p.data.transforms import tile_starts
from p2p.models import UNetGenerator

NORM_MODES = ("batch", "nodropout", "running")


@dataclasses.dataclass(frozen=True)
class Generator:
  """A trained generator: module, variables, the size it was trained at, and its provenance."""

  module: UNetGenerator
  variables: dict[str, Any]  # {"params": ..., "batch_stats": ...}
  image_size: int
  step: int = 0
  ema: bool = False  # variables hold the run's averaged weights (optim.ema_decay > 0)
  data: DataConfig = DataConfig()  # the run's data section: layout, direction, channels, ranges

  @property
  def channels(self) -> tuple[int, int]:
    """(input, output) channels."""
    return self.data.model_channels()

  @property
  def ranges(self) -> tuple[tuple[float, float], tuple[float, float]]:
    """(input, output) value ranges: recorded by the run, or the 8-bit range of older runs."""
    a, b = (tuple(r) or value_range(d or "uint8") for r, d in (
        (self.data.a_range, self.data.a_dtype), (self.data.b_range, self.data.b_dtype)))
    return orient(a, b, self.data.direction)

  @property
  def dtypes(self) -> tuple[str, str]:
    """(input, output) sample types as the run recorded them ('' for older runs)."""
    return orient(self.data.a_dtype, self.data.b_dtype, self.data.direction)

  @property
  def output_dtype(self) -> str:
    """The target's sample type (uint8 for runs that did not record one)."""
    return self.dtypes[1] or "uint8"


def _as_float(gen: Generator, batch: np.ndarray | jax.Array) -> tuple[jax.Array, bool]:
  """NHWC integer samples or float [-1, 1] -> float32 [-1, 1], and whether it was integer."""
  batch = np.asarray(batch) if not isinstance(batch, jax.Array) else batch
  channels = gen.channels[0]
  if batch.ndim != 4 or batch.shape[-1] != channels:
    raise ValueError(f"sample() takes NHWC batches with {channels} channel(s) (this generator's "
                     f"input); got shape {batch.shape}. Add a batch axis with x[None].")
  if jnp.issubdtype(batch.dtype, jnp.integer):
    return jnp.asarray(to_unit(np.asarray(batch), gen.ranges[0])), True
  return jnp.asarray(batch, jnp.float32), False


@functools.lru_cache(maxsize=16)
def _predict_fn(module: UNetGenerator, norm: str) -> Callable:
  """Jitted (variables, x_BxHxWx3, rng) -> G(x), each image with its own statistics."""
  if norm not in NORM_MODES:
    raise ValueError(f"norm={norm!r} is not one of {NORM_MODES}.")
  if norm == "running":  # no per-image statistics: one batched call (vmap costs ~2x on CPU)
    return jax.jit(lambda variables, x_BxHxWx3, rng, offset: module.apply(
        variables, x_BxHxWx3, train=False, dropout=False))

  def one(variables, x_HxWx3, rng):
    out, _ = module.apply(variables, x_HxWx3[None], train=True, dropout=norm == "batch",
                          rngs={"dropout": rng}, mutable=["batch_stats"])
    return out[0]

  @jax.jit
  def predict(variables, x_BxHxWx3, rng, offset):
    keys = jax.vmap(lambda i: jax.random.fold_in(rng, i))(offset + jnp.arange(len(x_BxHxWx3)))
    return jax.vmap(one, in_axes=(None, 0, 0))(variables, x_BxHxWx3, keys)

  return predict


def bucket(n: int) -> int:
  """The batch a chunk of n images is padded to: the next power of two, so that any image size
  compiles at most log2(chunk) + 1 programs (each image's output is independent of the rest)."""
  return 1 << max(n - 1, 0).bit_length()


def _padded_call(predict: Callable, variables: Any, x: jax.Array, rng: jax.Array,
                 offset: int) -> jax.Array:
  """predict on x padded (edge rows) to its bucket's batch, the padding cut off again."""
  n = len(x)
  pad = bucket(n) - n
  if pad:
    x = jnp.concatenate([x, jnp.broadcast_to(x[-1:], (pad, *x.shape[1:]))])
  return predict(variables, x, rng, offset)[:n]


def sample(gen: Generator, batch: np.ndarray | jax.Array, *, rng: jax.Array | None = None,
           norm: str = "batch", chunk: int = 16) -> np.ndarray:
  """Targets for a batch of inputs: integers in -> the target's dtype out, float [-1, 1] ->
  float32 [-1, 1]. Image i uses the key fold_in(rng, i), so results do not depend on `chunk`.
  Chunks run padded to a power-of-two batch (`bucket`), so few shapes are ever compiled.
  """
  x, was_int = _as_float(gen, batch)
  predict = _predict_fn(gen.module, norm)
  rng = jax.random.PRNGKey(0) if rng is None else rng
  outs = [_padded_call(predict, gen.variables, x[i:i + chunk], rng, i)
          for i in range(0, len(x), chunk)]
  out = np.asarray(jnp.concatenate(outs)) if outs else np.zeros(
      (0, *x.shape[1:3], gen.channels[1]), np.float32)
  return from_unit(out, gen.ranges[1], gen.output_dtype) if was_int else out.astype(np.float32)


def blend_window(size: int, overlap: int) -> np.ndarray:
  """(size, size) weights: 1 inside, a linear ramp to 1/(overlap+1) over `overlap` edge pixels."""
  ramp = np.ones(size, np.float32)
  if overlap > 0:
    edge = np.arange(1, overlap + 1, dtype=np.float32) / (overlap + 1)
    ramp[:overlap] = edge
    ramp[size - overlap:] = np.minimum(ramp[size - overlap:], edge[::-1])
  return np.outer(ramp, ramp)


def translate_image(gen: Generator, image: np.ndarray, *, overlap: int | None = None,
                    rng: jax.Array | None = None, norm: str = "batch",
                    chunk: int = 16) -> np.ndarray:
  """A whole input image (H x W x C as read from a file, any size and dtype) -> its target.

  The output has the target's channels, dtype and value range. Smaller than the model size:
  reflect-padded, translated, cropped back. Larger: tiles of the model size every
  (size - overlap) pixels (the last flush with the edge), each weighted by a window that fades
  over the overlap and blended in [-1, 1], so seams blend away. Exactly the model size: one
  tile. The default overlap, half the model size, makes the windows a 50%-overlapping triangle
  (Bartlett) cross-fade: measured on a model with per-tile statistics, pixel jumps across seam
  lines are then no larger than inside tiles, while a quarter overlap leaves them 1.7x larger.
  """
  image = np.asarray(image)
  if image.ndim == 2:
    image = image[..., None]
  if image.ndim != 3 or image.shape[-1] != gen.channels[0]:
    raise ValueError(f"translate_image() takes an H x W x {gen.channels[0]} image (this "
                     f"generator's input); got shape {image.shape}.")
  trained_on = gen.dtypes[0]
  if trained_on and image.dtype.name != trained_on:
    raise ValueError(f"The image holds {image.dtype.name} samples but this run was trained on "
                     f"{trained_on} inputs, so its values would be scaled wrongly; pass the same "
                     f"kind of image (bit depth) as the training inputs.")
  size = gen.image_size
  overlap = size // 2 if overlap is None else overlap
  if not 0 <= overlap < size:
    raise ValueError(f"overlap={overlap} must be in [0, {size}) (the model size).")
  height, width = image.shape[:2]
  unit = to_unit(image, gen.ranges[0])
  padded = np.pad(unit, ((0, max(size - height, 0)), (0, max(size - width, 0)), (0, 0)),
                  mode="reflect" if min(height, width) > 1 else "edge")
  tops = tile_starts(padded.shape[0], size, "cover", size - overlap)
  lefts = tile_starts(padded.shape[1], size, "cover", size - overlap)
  boxes = [(top, left) for top in tops for left in lefts]
  tiles = np.stack([padded[t:t + size, l:l + size] for t, l in boxes])
  out = sample(gen, tiles, rng=rng, norm=norm, chunk=chunk)
  window = blend_window(size, overlap if len(boxes) > 1 else 0)[..., None]
  total = np.zeros((*padded.shape[:2], out.shape[-1]), np.float32)
  weight = np.zeros(padded.shape[:2] + (1,), np.float32)
  for (top, left), tile in zip(boxes, out):
    total[top:top + size, left:left + size] += window * tile
    weight[top:top + size, left:left + size] += window
  result = (total / weight)[:height, :width]
  return from_unit(result, gen.ranges[1], gen.output_dtype)
