"""Grain pipelines: per-process shards of (image, region) elements, shuffled, jittered, batched."""

from __future__ import annotations

import dataclasses
import logging
import signal
from typing import Any

import grain
import numpy as np

from p2p.config import DataConfig
from p2p.data.folder import FolderSource, Scan, describe, input_side, orient, scan_split
from p2p.data.transforms import Jitter, ReadRegion, Resize, image_regions


@dataclasses.dataclass(frozen=True)
class Split:
  """One process's view of a split: its source, its images and the regions cut from them."""

  source: Any
  image_indices: np.ndarray
  regions: np.ndarray  # (position into image_indices, top, left); top = -1: the whole image
  region_size: int

  @property
  def num_examples(self) -> int:
    """Training examples (regions) this process sees per epoch."""
    return len(self.regions)


def open_source(cfg: DataConfig, split: str, scan: Scan | None = None) -> tuple[Any, np.ndarray]:
  """The random-access source of a split and each image's (height, width) per side."""
  if cfg.source == "tfds":
    from p2p.data.tfds_maps import TfdsSource
    source = TfdsSource(cfg.tfds_data_dir, split)
    half = source[0]["a"].shape[0]
    return source, np.tile([half, half], (len(source), 1))
  scan = scan_split(cfg, split) if scan is None else scan
  return FolderSource(scan.pairs, cfg.a_channels, cfg.b_channels), scan.sizes


def resolve(cfg: DataConfig) -> tuple[DataConfig, Scan | None]:
  """The config with the data's layout, hold-out, channels, dtypes and ranges filled in (logged),
  and the train split's scan (None for TFDS)."""
  if cfg.source == "tfds":
    return dataclasses.replace(cfg, layout="side_by_side", a_channels=3, b_channels=3,
                               a_dtype="uint8", b_dtype="uint8", a_range=(0.0, 255.0),
                               b_range=(0.0, 255.0)), None
  scan = scan_split(cfg, "train")
  cfg = dataclasses.replace(cfg, **describe(cfg, scan))
  logging.info("Data: %s", summary(cfg, len(scan.pairs)))
  return cfg, scan


def summary(cfg: DataConfig, num_train: int) -> str:
  """One line on a resolved dataset: layout, pairs, both sides and what the model sees."""
  layout = cfg.layout + (f" (A: {cfg.a_dir}, B: {cfg.b_dir})" if cfg.layout == "explicit" else "")
  sides = ", ".join(f"{s.upper()} {getattr(cfg, s + '_channels')} x "
                    f"{getattr(cfg, s + '_dtype')} in {list(getattr(cfg, s + '_range'))}"
                    for s in "ab")
  val = ("val/ folder" if cfg.val_source == "folder" else
         f"hold-out of {cfg.val_fraction:.0%} of train by file-stem hash")
  return (f"{cfg.data_dir}, layout {layout}, {num_train} train pairs, val: {val}; {sides}; "
          f"input = {input_side(cfg.direction).upper()} (direction {cfg.direction}).")


def shard_indices(num_images: int, process_index: int = 0, process_count: int = 1,
                  equal: bool = True) -> np.ndarray:
  """Images this process reads: every process_count-th from process_index.

  equal=True drops the last num_images % process_count images so that every process runs the
  same number of steps (needed for training); equal=False keeps them all (evaluation).
  """
  if not 0 <= process_index < process_count:
    raise ValueError(f"process_index={process_index} is not in [0, {process_count}).")
  usable = num_images - num_images % process_count if equal else num_images
  if usable == 0:
    raise ValueError(f"{num_images} images cannot be shared by {process_count} processes.")
  return np.arange(process_index, usable, process_count)


def _regions(cfg: DataConfig, sizes: np.ndarray) -> np.ndarray:
  return image_regions(sizes, cfg.patch_size, cfg.patch_layout, cfg.patch_stride,
                       whole=cfg.preprocess == "resize")


def make_split(cfg: DataConfig, split: str, *, process_index: int = 0, process_count: int = 1,
               equal_shards: bool = True, scan: Scan | None = None) -> Split:
  """Opens a split and works out this process's images and the regions cut from each.

  With equal_shards, images of different sizes can give processes different region counts;
  every process then keeps the smallest count (each computes all counts from the same scan).
  """
  source, sizes = open_source(cfg, split, scan)
  indices = shard_indices(len(source), process_index, process_count, equal_shards)
  # One decode in this thread before the reader threads start. Freeing its image here raises
  # glibc's dynamic mmap threshold to an image's size, so the readers then reuse heap memory
  # instead of mapping and faulting in fresh pages for every image (maps, 2 reader threads:
  # ~170 -> ~270 img/s until the threshold rises on its own, ~800 images later).
  source[int(indices[0])]
  regions = _regions(cfg, sizes[indices])
  if equal_shards and process_count > 1:
    fewest = min(len(_regions(cfg, sizes[shard_indices(len(source), p, process_count)]))
                 for p in range(process_count))
    regions = regions[:fewest]
  return Split(source, indices, regions, 0 if cfg.preprocess == "resize" else cfg.patch_size)


def region_reader(cfg: DataConfig, split: Split) -> ReadRegion:
  """Element index -> native {'input', 'target'} region (a patch, or the whole image)."""
  return ReadRegion(split.source, tuple(int(i) for i in split.image_indices), split.regions,
                    split.region_size, cfg.direction)


def ranges(cfg: DataConfig) -> tuple[tuple, tuple]:
  """(input, target) value ranges as configured; () = each image's dtype range."""
  return orient(tuple(cfg.a_range), tuple(cfg.b_range), cfg.direction)


def train_dataset(cfg: DataConfig, split: Split, *, batch_size: int, seed: int,
                  num_epochs: int | None = None) -> grain.MapDataset:
  """Shuffled (reshuffled every epoch), jittered, batched; num_epochs=None repeats forever."""
  if batch_size > split.num_examples:
    raise ValueError(f"batch_size={batch_size} is larger than the {split.num_examples} training "
                     f"examples of this process; lower the batch size.")
  ds = grain.MapDataset.range(split.num_examples).shuffle(seed=seed).repeat(num_epochs)
  ds = ds.map(region_reader(cfg, split))
  ds = ds.random_map(Jitter(cfg.load_size, cfg.image_size, cfg.flip, cfg.jitter, ranges(cfg)),
                     seed=seed)
  return ds.batch(batch_size, drop_remainder=True)


def eval_dataset(cfg: DataConfig, split: Split, *, batch_size: int) -> grain.MapDataset:
  """One pass in file order, no jitter, no shuffle; the last batch may be short."""
  ds = grain.MapDataset.range(split.num_examples).map(region_reader(cfg, split))
  return ds.map(Resize(cfg.image_size, ranges(cfg))).batch(batch_size, drop_remainder=False)


def leave_stop_signals_to_main(worker_index: int, worker_count: int) -> None:
  """In each worker process: ignore SIGTERM/SIGINT, which the main process handles.

  A scheduler's SIGTERM (and Ctrl-C) reaches the whole process group. A worker it killed would
  break the main process's next read, so the run would leave through the crash path (and its
  data position could include half-read batches) instead of stopping at a step and saving.
  Closing the iterator still ends the workers (grain kills those that do not exit).
  """
  del worker_index, worker_count
  signal.signal(signal.SIGTERM, signal.SIG_IGN)
  signal.signal(signal.SIGINT, signal.SIG_IGN)


def make_iterator(cfg: DataConfig, ds: grain.MapDataset) -> grain.DatasetIterator:
  """A checkpointable iterator: reader threads, plus worker processes if worker_count > 0."""
  it_ds = ds.to_iter_dataset(grain.ReadOptions(num_threads=cfg.num_threads,
                                               prefetch_buffer_size=cfg.prefetch_buffer_size))
  if cfg.worker_count > 0:
    it_ds = it_ds.mp_prefetch(grain.MultiprocessingOptions(
        num_workers=cfg.worker_count, per_worker_buffer_size=cfg.worker_buffer_size),
        worker_init_fn=leave_stop_signals_to_main)
  logging.info("Data iterator: %d worker process(es), %d reader thread(s).", cfg.worker_count,
               cfg.num_threads)
  return iter(it_ds)


def steps_per_epoch(split: Split, batch_size: int) -> int:
  """Training steps that make one pass over this process's examples."""
  return split.num_examples // batch_size
