"""Writes a PNG grid of what the pipeline feeds the model: input | target pairs, train and val."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
from absl import app, flags
from ml_collections import config_flags
from PIL import Image

from p2p.config import ConfigError, DataConfig, data_config
from p2p.data.errors import DataError
from p2p.data.pipeline import eval_dataset, make_iterator, make_split, train_dataset

_CONFIG = config_flags.DEFINE_config_file("config", "configs/demo.py", "Experiment config.",
                                          lock_config=True)
_OUT = flags.DEFINE_string("out", "runs/preview.png", "PNG to write.")
_ROWS = flags.DEFINE_integer("rows", 4, "Examples per split.")


def to_uint8(image: np.ndarray) -> np.ndarray:
  """float [-1, 1] -> uint8 [0, 255]."""
  return np.clip(np.rint((np.asarray(image) + 1.0) * 127.5), 0, 255).astype(np.uint8)


def grid(rows: list[list[np.ndarray]], pad: int = 4) -> np.ndarray:
  """Tiles equally sized HxWx3 images into a grid with white gutters."""
  h, w = rows[0][0].shape[:2]
  cols = max(len(r) for r in rows)
  out = np.full((len(rows) * (h + pad) + pad, cols * (w + pad) + pad, 3), 255, np.uint8)
  for i, row in enumerate(rows):
    for j, image in enumerate(row):
      y, x = pad + i * (h + pad), pad + j * (w + pad)
      out[y:y + h, x:x + w] = image
  return out


def preview_rows(cfg: DataConfig, count: int, seed: int) -> list[list[np.ndarray]]:
  """Rows of [train input, train target, val input, val target] as uint8 images."""
  train = make_iterator(cfg, train_dataset(cfg, make_split(cfg, "train"), batch_size=1,
                                           seed=seed))
  val = iter(eval_dataset(cfg, make_split(cfg, "val", equal_shards=False), batch_size=1))
  rows = []
  for _ in range(count):
    t, v = next(train), next(val, None)
    row = [to_uint8(t["input"][0]), to_uint8(t["target"][0])]
    if v is not None:
      row += [to_uint8(v["input"][0]), to_uint8(v["target"][0])]
    rows.append(row)
  return rows


def write_preview(cfg: DataConfig, out: str | os.PathLike, count: int = 4, seed: int = 0) -> Path:
  """Writes the preview grid and returns its path."""
  out = Path(out)
  out.parent.mkdir(parents=True, exist_ok=True)
  Image.fromarray(grid(preview_rows(cfg, count, seed))).save(out)
  return out


def main(argv: list[str]) -> None:
  del argv
  config = _CONFIG.value
  try:
    path = write_preview(data_config(config), _OUT.value, _ROWS.value, config.seed)
  except (DataError, ConfigError) as e:
    sys.exit(f"error: {e}")
  print(f"Preview of the input pipeline (train input | target | val input | target): {path}")


if __name__ == "__main__":
  app.run(main)
