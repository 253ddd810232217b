"""Writes a PNG grid of what the pipeline feeds the model: input | target pairs, train and val."""

from __future__ import annotations

import os
from pathlib import Path

from absl import flags
from ml_collections import config_flags
from PIL import Image

from p2p import cli
from p2p.config import ConfigError, DataConfig, data_config
from p2p.data.errors import DataError
from p2p.data.images import display, grid, to_uint8
from p2p.data.pipeline import eval_dataset, make_iterator, make_split, train_dataset

_CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment config file, e.g. "
                                          "configs/demo.py.", lock_config=True)
flags.mark_flag_as_required("config")
_OUT = flags.DEFINE_string("out", "runs/preview.png", "PNG to write.")
_ROWS = flags.DEFINE_integer("rows", 4, "Examples per split.")


def preview_rows(cfg: DataConfig, count: int, seed: int) -> list[list]:
  """Rows of [train input, train target, val input, val target] as uint8 images."""
  train = make_iterator(cfg, train_dataset(cfg, make_split(cfg, "train"), batch_size=1,
                                           seed=seed))
  val = iter(eval_dataset(cfg, make_split(cfg, "val", equal_shards=False), batch_size=1))
  rows = []
  for _ in range(count):
    t, v = next(train), next(val, None)
    row = [display(to_uint8(t["input"][0])), display(to_uint8(t["target"][0]))]
    if v is not None:
      row += [display(to_uint8(v["input"][0])), display(to_uint8(v["target"][0]))]
    rows.append(row)
  return rows


def write_preview(cfg: DataConfig, out: str | os.PathLike, count: int = 4, seed: int = 0) -> Path:
  """Writes the preview grid and returns its path."""
  out = Path(out)
  out.parent.mkdir(parents=True, exist_ok=True)
  Image.fromarray(grid(preview_rows(cfg, count, seed))).save(out)
  return out


def main(argv: list[str]) -> None:
  """Writes the preview of the --config file's data pipeline."""
  del argv
  config = cli.config_value(_CONFIG)
  try:
    path = write_preview(data_config(config), _OUT.value, _ROWS.value, config.seed)
  except (DataError, ConfigError) as e:
    cli.fail(str(e))
  print(f"Preview of the input pipeline (train input | target | val input | target): {path}")


if __name__ == "__main__":
  cli.run(main)
