"""Procedural photo | map pairs in the pix2pix maps format, for tests, smoke runs and demos.

`python -m p2p.data.synthetic --out data/synthetic --train 200 --val 16 --seed 0` writes
data/synthetic/train/1.jpg ... and val/1.jpg ..., each a 1200x600 JPEG: a "satellite photo"
(left) and the flat map of the same layout (right), aligned to the pixel. One street grid,
blocks, parks, water and highway drive both halves; roof colours, shadows, trees and cars appear
only in the photo, so the map -> photo mapping is learnable but not trivial.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from p2p.data.errors import DataError
from p2p.data.synthetic.layout import SIZE, WATER, make_layout
from p2p.data.synthetic.render import MAP_COLOURS, rasterize, render_map, render_photo

__all__ = ["MAP_COLOURS", "SIZE", "WATER", "cli", "image_rng", "main", "render_image",
           "render_pair", "write_dataset"]

QUALITY = 90
MIN_SIZE = 32
SPLITS = ("train", "val")


def image_rng(seed: int, split_id: int, index: int) -> np.random.Generator:
  """The generator of one file, so every image depends only on (seed, split, index)."""
  return np.random.default_rng([seed, split_id, index])


def render_pair(rng: np.random.Generator | int | Sequence[int], size: int = SIZE) -> np.ndarray:
  """Renders one uint8 (size, 2*size, 3) pair: photo left, map right, same layout."""
  return np.asarray(render_image(rng, size))


def render_image(rng: np.random.Generator | int | Sequence[int],
                 size: int = SIZE) -> Image.Image:
  """Like render_pair, as a PIL image ready to save."""
  rng = np.random.default_rng(rng)
  layout = make_layout(rng, size)
  rasters = rasterize(layout)
  pair = Image.new("RGB", (2 * size, size))
  pair.paste(render_photo(rng, layout, rasters), (0, 0))
  pair.paste(render_map(rasters), (size, 0))
  return pair



def write_dataset(out: str | os.PathLike, train: int, val: int, seed: int = 0, *,
                  size: int = SIZE, quality: int = QUALITY) -> Path:
  """Writes <out>/train/1..train.jpg and <out>/val/1..val.jpg; one seed gives the same bytes."""
  _validate(train, val, seed, size, quality)
  out = Path(out).expanduser()
  for split_id, (split, count) in enumerate(zip(SPLITS, (train, val))):
    folder = out / split
    _refuse_stale(folder, count)
    if count:
      folder.mkdir(parents=True, exist_ok=True)
    for index in range(1, count + 1):
      image = render_image(image_rng(seed, split_id, index), size)
      image.save(folder / f"{index}.jpg", quality=quality)
  return out


def _validate(train: int, val: int, seed: int, size: int, quality: int) -> None:
  """Raises DataError naming the first out-of-range argument."""
  checks = ((train >= 1, f"train={train}: write at least 1 training pair"),
            (val >= 0, f"val={val}: the number of validation pairs cannot be negative"),
            (seed >= 0, f"seed={seed}: use a non-negative seed"),
            (size >= MIN_SIZE, f"size={size}: each half must be at least {MIN_SIZE} pixels"),
            (1 <= quality <= 100, f"quality={quality}: JPEG quality must be in 1..100"))
  for ok, message in checks:
    if not ok:
      raise DataError(message + ".")


def _refuse_stale(folder: Path, count: int) -> None:
  """Raises DataError if the folder holds images this run would not overwrite."""
  if not folder.is_dir():
    return
  expected = {f"{i}.jpg" for i in range(1, count + 1)}
  stale = sorted((p.name for p in folder.iterdir()
                  if p.suffix.lower() in (".jpg", ".jpeg", ".png") and p.name not in expected),
                 key=lambda name: (len(name), name))
  if stale:
    raise DataError(f"{folder} already holds {len(stale)} other images (e.g. {stale[0]}) that "
                    f"would mix with this dataset; delete them or choose an empty --out folder.")


def main(argv: Sequence[str] | None = None) -> Path:
  """Parses the command line, writes the dataset, prints a summary and returns its folder."""
  parser = argparse.ArgumentParser(prog="python -m p2p.data.synthetic", description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--out", required=True, help="dataset folder to create (gets train/, val/)")
  parser.add_argument("--train", type=int, default=200, help="number of training pairs (>= 1)")
  parser.add_argument("--val", type=int, default=16, help="number of validation pairs (>= 0)")
  parser.add_argument("--seed", type=int, default=0, help="same seed -> identical files (>= 0)")
  parser.add_argument("--size", type=int, default=SIZE,
                      help=f"side of each half in pixels (>= {MIN_SIZE}); files are 2*size x size")
  parser.add_argument("--quality", type=int, default=QUALITY, help="JPEG quality, 1..100")
  args = parser.parse_args(argv)
  start = time.perf_counter()
  try:
    out = write_dataset(args.out, args.train, args.val, args.seed, size=args.size,
                        quality=args.quality)
  except DataError as e:
    parser.error(str(e))
  print(f"Wrote {args.train} train + {args.val} val synthetic pairs ({2 * args.size}x{args.size}, "
        f"seed {args.seed}) to {out} in {time.perf_counter() - start:.1f} s.")
  return out


def cli(argv: Sequence[str] | None = None) -> None:
  """Console entry point (p2p-synthetic); returns None so the exit status stays 0."""
  main(argv)


