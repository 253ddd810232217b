"""The demo's model side: one loaded generator; inputs checked, translated and shown.

No Gradio here: the page (p2p.serve.app) calls these functions and turns a ServeError into a
one-line message. Every image goes through p2p.translate_image: tiles of the model size,
batched in power-of-two buckets, so only the first request of a bucket compiles.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
import time
import uuid
from pathlib import Path

import jax
import numpy as np

from p2p.data.errors import DataError
from p2p.errors import UserError
from p2p.data.images import display
from p2p.data.io import default_suffix, write_image
from p2p.data.values import to_8bit, value_range
from p2p.infer import Generator, translate_image
from p2p.infer.inputs import model_input, read_input
from p2p.infer.sample import _predict_fn

DEFAULT_MAX_PIXELS = 4_000_000
KEEP_OUTPUTS_S = 3600  # result files older than this are deleted when a new one is written


class ServeError(UserError):
  """A bad request, said in one line for the page (the server carries on)."""


@dataclasses.dataclass
class Engine:
  """A generator with the demo's limits: translate uploads and sketches, write results."""

  gen: Generator
  max_pixels: int = DEFAULT_MAX_PIXELS
  seed: int = 0
  norm: str = "batch"
  out_dir: Path = dataclasses.field(
      default_factory=lambda: Path(tempfile.mkdtemp(prefix="p2p-serve-")))

  def read(self, path: str | os.PathLike) -> np.ndarray:
    """An uploaded file as it is (H x W x C, its dtype), or a ServeError naming it."""
    name = Path(path).name
    try:
      return read_input(path, self.max_pixels)
    except DataError as e:
      raise ServeError(_short(str(e), path)) from None
    except OSError as e:
      raise ServeError(f"{name} could not be read ({e.strerror or e}).") from None

  def translate(self, image: np.ndarray) -> np.ndarray:
    """H x W x C input samples -> the target, at full resolution in the target's dtype."""
    image = np.asarray(image)
    height, width = image.shape[:2]
    if self.max_pixels > 0 and height * width > self.max_pixels:
      raise ServeError(f"The image is {width}x{height} ({height * width / 1e6:.1f} MP), over "
                       f"the limit of {self.max_pixels / 1e6:.1f} MP; pass a smaller image or "
                       f"restart p2p-serve with a larger --max_pixels.")
    try:
      image = model_input(image, self.gen.channels[0], "The image")
      return translate_image(self.gen, image, rng=jax.random.PRNGKey(self.seed), norm=self.norm,
                             chunk=64)
    except ValueError as e:  # DataError included: wrong channels or bit depth
      raise ServeError(str(e)) from None

  def view(self, image: np.ndarray, side: str = "output") -> np.ndarray:
    """Any input or output image as 8-bit RGB for the page (p2p.data.images.display)."""
    index = 0 if side == "input" else 1
    trained = self.gen.dtypes[index] or "uint8"
    # The run's range for its own kind of samples; any other image by its dtype's range.
    lo_hi = self.gen.ranges[index] if image.dtype.name == trained else value_range(image.dtype)
    return display(to_8bit(image, lo_hi))

  def save(self, image: np.ndarray, stem: str) -> Path:
    """Writes a result in the target's format (PNG for 8/16-bit gray/RGB, else TIFF)."""
    self._forget_old()
    folder = self.out_dir / "results" / uuid.uuid4().hex[:12]
    folder.mkdir(parents=True)
    path = folder / f"{stem}_p2p{default_suffix(image.shape[-1], image.dtype.name)}"
    write_image(path, image)
    return path

  def warm_up(self) -> float:
    """Compiles the one-tile bucket (a sketch's) now; returns the seconds it took."""
    start = time.perf_counter()
    size, (channels, _) = self.gen.image_size, self.gen.channels
    dtype = self.gen.dtypes[0] or "uint8"
    self.translate(np.zeros((size, size, channels), dtype))
    return time.perf_counter() - start

  def compiled(self) -> int:
    """How many sampler programs are compiled so far (one per tile bucket)."""
    return _predict_fn(self.gen.module, self.norm)._cache_size()  # pylint: disable=protected-access

  def _forget_old(self) -> None:
    """Deletes result files older than KEEP_OUTPUTS_S (Gradio keeps its own copy)."""
    cutoff = time.time() - KEEP_OUTPUTS_S
    for folder in (self.out_dir / "results").glob("*"):
      try:
        if folder.stat().st_mtime < cutoff:
          for file in folder.iterdir():
            file.unlink()
          folder.rmdir()
      except OSError:
        pass


def _short(message: str, path: str | os.PathLike) -> str:
  """A reader's message with Gradio's temporary folder cut from the file name."""
  message = message.replace(str(Path(path).parent) + os.sep, "")
  return message.replace(" Replace or delete the file.", "")
