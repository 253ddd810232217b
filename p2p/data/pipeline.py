"""Grain pipelines: per-process shards of (image, region) elements, shuffled, jittered, batched."""

from __future__ import annotations

import dataclasses
import logging
import signal
from typing import Any

import grain
import numpy as np

from p2p.config import DataConfig
from p2p.data.folder import FolderSource, scan_split
from p2p.data.transforms import Jitter, ReadRegion, Resize, patch_boxes


@dataclasses.dataclass(frozen=True)
class Split:
  """One process's view of a split: its source, its images and the regions cut from each."""

  source: Any
  image_indices: np.ndarray
  boxes: tuple[tuple[int, int], ...]
  region_size: int

  @property
  def num_examples(self) -> int:
    """Training examples (regions) this process sees per epoch."""
    return len(self.image_indices) * max(len(self.boxes), 1)


def open_source(cfg: DataConfig, split: str) -> Any:
  """The random-access source of a split: the folder reader (default) or the TFDS builder."""
  if cfg.source == "tfds":
    from p2p.data.tfds_maps import TfdsSource
    return TfdsSource(cfg.tfds_data_dir, split)
  paths = scan_split(cfg.data_dir, split, skip_bad_files=cfg.skip_bad_files,
                     verify=cfg.verify_images, num_threads=max(cfg.num_threads, 2))
  return FolderSource(paths)


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


def make_split(cfg: DataConfig, split: str, *, process_index: int = 0, process_count: int = 1,
               equal_shards: bool = True, source: Any = None) -> Split:
  """Opens a split and works out this process's images and the regions cut from each."""
  source = open_source(cfg, split) if source is None else source
  indices = shard_indices(len(source), process_index, process_count, equal_shards)
  if cfg.preprocess == "resize":
    return Split(source, indices, (), 0)
  half = source[int(indices[0])]["pair"].shape[0]
  boxes = tuple(patch_boxes(half, cfg.patch_size, cfg.patch_layout, cfg.patch_stride))
  return Split(source, indices, boxes, cfg.patch_size)


def region_reader(cfg: DataConfig, split: Split) -> ReadRegion:
  """Element index -> uint8 {'input', 'target'} region (a patch, or the whole half)."""
  return ReadRegion(split.source, tuple(int(i) for i in split.image_indices), split.boxes,
                    split.region_size, cfg.direction)


def train_dataset(cfg: DataConfig, split: Split, *, batch_size: int, seed: int,
                  num_epochs: int | None = None) -> grain.MapDataset:
  """Shuffled (reshuffled every epoch), jittered, batched; num_epochs=None repeats forever."""
  if batch_size > split.num_examples:
    raise ValueError(f"batch_size={batch_size} is larger than the {split.num_examples} training "
                     f"examples of this process; lower the batch size.")
  ds = grain.MapDataset.range(split.num_examples).shuffle(seed=seed).repeat(num_epochs)
  ds = ds.map(region_reader(cfg, split))
  ds = ds.random_map(Jitter(cfg.load_size, cfg.image_size, cfg.flip, cfg.jitter), seed=seed)
  return ds.batch(batch_size, drop_remainder=True)


def eval_dataset(cfg: DataConfig, split: Split, *, batch_size: int) -> grain.MapDataset:
  """One pass in file order, no jitter, no shuffle; the last batch may be short."""
  ds = grain.MapDataset.range(split.num_examples).map(region_reader(cfg, split))
  return ds.map(Resize(cfg.image_size)).batch(batch_size, drop_remainder=False)


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
