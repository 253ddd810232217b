"""Small datasets of every layout and format for the own-data tests (real files)."""

from pathlib import Path

import numpy as np

from p2p.data.io import write_image

H, W = 40, 48
# format -> (suffix, channels, dtype, value range written)
FORMATS = {"jpeg_rgb8": (".jpg", 3, np.uint8, (0, 255)),
           "png_gray16": (".png", 1, np.uint16, (0, 4095)),  # 12-bit data in uint16
           "tif_4band16": (".tif", 4, np.uint16, (0, 65535)),
           "npy_float32": (".npy", 1, np.float32, (0.0, 1.0))}


def image(fmt: str, seed: int, size: tuple[int, int] = (H, W)) -> np.ndarray:
  """A smooth image of fmt whose first pixels hold the range's ends exactly."""
  _, channels, dtype, (lo, hi) = FORMATS[fmt]
  rng = np.random.default_rng(seed)
  base = rng.uniform(lo, hi, (size[0] // 8 + 1, size[1] // 8 + 1, channels))
  out = np.kron(base, np.ones((8, 8, 1)))[:size[0], :size[1]]
  out[:8, :8], out[:8, 8:16] = lo, hi  # blocks, so that JPEG keeps them near the ends
  return out.astype(dtype)


def write(root: Path, layout: str, fmt: str, splits: dict[str, int], b_fmt: str = "",
          dirs: tuple[str, str] = ("A/{split}", "B/{split}")) -> Path:
  """A dataset of `layout`: side_by_side (H x H halves), folders or explicit (`dirs`, by default
  A/{split}, B/{split}, the PyTorch repo's layout) of H x W images."""
  b_fmt, size = b_fmt or fmt, (H, H) if layout == "side_by_side" else (H, W)
  for split, count in splits.items():
    for i in range(1, count + 1):
      a, b = image(fmt, i, size), image(b_fmt, 100 + i, size)
      if layout == "side_by_side":
        write_image(root / split / f"{i}{FORMATS[fmt][0]}", np.concatenate([a, b], axis=1))
        continue
      a_dir, b_dir = ((f"{split}/A", f"{split}/B") if layout == "folders" else
                      tuple(d.format(split=split) for d in dirs))
      write_image(root / a_dir / f"{i}{FORMATS[fmt][0]}", a)
      write_image(root / b_dir / f"{i}{FORMATS[b_fmt][0]}", b)
  return root
