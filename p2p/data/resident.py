"""The training split decoded once and held on the accelerator; crop and flip run there.

The Grain pipeline decodes a JPEG, resizes and jitters on the host for every example of every
epoch, then copies float32 batches to the device. On a GPU that host work, not the step, sets
the pace. With data.resident, each training region is decoded, cut and resized to load_size
once (the same PIL bicubic resize as the Grain path, so the pixels are identical), kept in its
own sample type (uint8, uint16, ...) on the device, and each batch is gathered, randomly
cropped, flipped and scaled by one jitted call. The data position is the step itself, so a
checkpoint resumes it exactly.
"""

from __future__ import annotations

import concurrent.futures
import functools
import json
import logging
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.sharding import Mesh

from p2p.config import ConfigError, DataConfig
from p2p.data.pipeline import Split, ranges, region_reader
from p2p.data.transforms import rescale, resize
from p2p.data.values import value_range
from p2p.train import parallel

JITTER_STREAM = 0x6A177E5  # folded into key(seed): the jitter's own random stream
RESCALE_TABLE = rescale(np.arange(256, dtype=np.uint8))  # uint8 -> float32 [-1, 1], as on host


def decode_regions(cfg: DataConfig, split: Split) -> tuple[np.ndarray, np.ndarray]:
  """Every training region of this process as (inputs, targets), N x L x L x C native samples.

  L is data.load_size (jitter crops from it) or data.image_size (no jitter).
  """
  read = region_reader(cfg, split)
  size = cfg.load_size if cfg.jitter else cfg.image_size
  first = read.image_regions(0)[1][0]
  inputs, targets = (np.empty((split.num_examples, size, size, first[k].shape[-1]),
                              first[k].dtype) for k in ("input", "target"))

  def fill(position: int) -> None:  # one decode per image, however many regions it gives
    rows, regions = read.image_regions(position)
    for i, element in zip(rows, regions):
      for key, out in (("input", inputs), ("target", targets)):
        if element[key].shape[0] != element[key].shape[1]:
          raise ConfigError("data.resident keeps square regions; these images are not square "
                            "(use data.preprocess='patches' or data.resident=False).")
        out[i] = resize(element[key], size)

  with concurrent.futures.ThreadPoolExecutor(max(cfg.num_threads, 1)) as pool:
    list(pool.map(fill, range(len(split.image_indices))))
  return inputs, targets


def _to_unit(image: jax.Array, value_range: tuple[float, float]) -> jax.Array:
  """As the host's scaling: 8-bit through the host's own float32 table, bit for bit."""
  if image.dtype == jnp.uint8 and tuple(value_range) == (0.0, 255.0):
    return jnp.asarray(RESCALE_TABLE)[image]
  lo, hi = value_range
  return jnp.clip((image.astype(jnp.float32) - lo) / ((hi - lo) / 2) - 1.0, -1.0, 1.0)


def epoch_order(seed: int, epoch: int, num_examples: int) -> np.ndarray:
  """The examples of one epoch in their shuffled order (a fresh permutation every epoch)."""
  return np.random.default_rng([seed, epoch]).permutation(num_examples)


def _jitter_one(image_in: jax.Array, image_tg: jax.Array, key: jax.Array, size: int,
                jitter: bool, flip: bool, value_ranges: tuple) -> tuple[jax.Array, jax.Array]:
  """Aligned random crop and flip of one native pair, scaled to float32 [-1, 1]."""
  crop_key, flip_key = jax.random.split(key)
  if jitter:
    top, left = jax.random.randint(crop_key, (2,), 0, image_in.shape[0] - size + 1)
    image_in = lax.dynamic_slice(image_in, (top, left, 0), (size, size, image_in.shape[-1]))
    image_tg = lax.dynamic_slice(image_tg, (top, left, 0), (size, size, image_tg.shape[-1]))
  if flip:
    flipped = jax.random.bernoulli(flip_key)
    image_in = jnp.where(flipped, image_in[:, ::-1], image_in)
    image_tg = jnp.where(flipped, image_tg[:, ::-1], image_tg)
  return _to_unit(image_in, value_ranges[0]), _to_unit(image_tg, value_ranges[1])


def make_gather(cfg: DataConfig, seed: int, mesh: Mesh, stacked: bool,
                value_ranges: tuple = ((0.0, 255.0), (0.0, 255.0))) -> Callable:
  """jit(inputs, targets, indices[K, B], steps[K]) -> the K x B (or B when not stacked) batch.

  Example j of step s draws its crop and flip from fold_in(fold_in(base, s), j), where base is
  key(seed) folded with a tag of its own, apart from the model's streams.
  """
  base = jax.random.fold_in(jax.random.key(seed), JITTER_STREAM)

  def gather(inputs, targets, indices, steps):
    keys = jax.vmap(lambda s: jax.vmap(lambda j: jax.random.fold_in(
        jax.random.fold_in(base, s), j))(jnp.arange(indices.shape[1])))(steps)
    one = functools.partial(_jitter_one, size=cfg.image_size, flip=cfg.flip, jitter=cfg.jitter,
                            value_ranges=value_ranges)
    flat_in, flat_tg = jax.vmap(one)(inputs[indices.reshape(-1)], targets[indices.reshape(-1)],
                                     keys.reshape(-1))
    shape = indices.shape if stacked else indices.shape[1:]
    return {"input": flat_in.reshape(*shape, *flat_in.shape[1:]),
            "target": flat_tg.reshape(*shape, *flat_tg.shape[1:])}

  return jax.jit(gather, out_shardings=parallel.batch_sharding(mesh, stacked))


class ResidentIterator:
  """Batches gathered on the device from the resident split; its position is the step."""

  def __init__(self, cfg: DataConfig, split: Split, *, batch_size: int, seed: int,
               mesh: Mesh):
    if jax.process_count() > 1:
      raise ConfigError("data.resident=True runs in a single process (one or more local "
                        "devices); multi-host runs use the Grain pipeline (data.resident=False).")
    self._seed, self._batch = seed, batch_size
    inputs, targets = decode_regions(cfg, split)
    replicated = parallel.replicated(mesh)
    self._inputs = jax.device_put(inputs, replicated)
    self._targets = jax.device_put(targets, replicated)
    self.num_examples = split.num_examples
    self.steps_per_epoch = self.num_examples // batch_size
    value_ranges = tuple(value_range(x.dtype, given)
                         for x, given in zip((inputs, targets), ranges(cfg)))
    self._gather = {s: make_gather(cfg, seed, mesh, s, value_ranges) for s in (False, True)}
    self.step = 0
    self._order: tuple[int, np.ndarray | None] = (-1, None)
    logging.info("Resident data: %d examples, %.2f GiB of %s on each device.",
                 self.num_examples, (inputs.nbytes + targets.nbytes) / 2 ** 30, inputs.dtype)

  def indices(self, step: int, n: int) -> np.ndarray:
    """n x batch example indices of steps [step, step + n), all within one epoch."""
    epoch, offset = divmod(step, self.steps_per_epoch)
    if offset + n > self.steps_per_epoch:
      raise ValueError(f"steps {step}..{step + n - 1} cross an epoch end.")
    if self._order[0] != epoch:  # one permutation per epoch, not per call
      self._order = (epoch, epoch_order(self._seed, epoch, self.num_examples))
    order = self._order[1]
    return order[offset * self._batch:(offset + n) * self._batch].reshape(n, self._batch)

  def fetch(self, n: int) -> dict[str, jax.Array]:
    """The next n steps' batch on the device: K x B when n > 1, B when n == 1."""
    indices = jnp.asarray(self.indices(self.step, n), jnp.int32)
    steps = jnp.arange(self.step, self.step + n, dtype=jnp.int32)
    self.step += n
    return self._gather[n > 1](self._inputs, self._targets, indices, steps)

  def get_state(self) -> bytes:
    """The position, as grain's checkpoint handler stores it."""
    return json.dumps({"next_index": self.step}).encode()

  def set_state(self, state: bytes | dict) -> None:
    """Repositions to a saved position (JSON bytes or {'next_index': step})."""
    try:
      self.step = int((json.loads(state) if isinstance(state, bytes) else state)["next_index"])
    except (KeyError, TypeError, json.JSONDecodeError) as e:  # a Grain iterator's state
      raise ValueError(f"not a resident-data position: {e}") from None

  def start_prefetch(self) -> None:
    """Nothing to prefetch: the data is already on the device."""

  def close(self) -> None:
    """Frees the device copy."""
    self._inputs = self._targets = None
