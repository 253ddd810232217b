"""p2p-translate --workdir=RUN --input=MAP.png --output=PHOTO.png: maps of any size (python -m p2p.translate).

Reads .jpg .jpeg .png (8/16-bit) .tif .tiff (N bands, GeoTIFF) .npy in their own channels and
dtype; RGB(A) -> gray, gray -> RGB and RGBA -> RGB are converted to the model's input channels.
Writes the target's channels and bit depth: PNG when it holds them, else TIFF (GeoTIFF inputs:
TIFF with the input's georeferencing); --format or --output's suffix choose another.
--input is one image or a folder of them; --output is a file (one input) or a folder (written as
<stem><suffix>). Images larger than the model size are translated in overlapping tiles blended
without seams; smaller ones are padded.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from absl import flags

from p2p import cli
from p2p.data.folder import split_pair
from p2p.data.errors import DataError
from p2p.data.io import SUFFIXES, default_suffix, is_image, read_geotags, write_image
from p2p.infer.inputs import model_input, read_input

FORMATS = ("auto", "png", "tif", "npy")

_WORKDIR = flags.DEFINE_string("workdir", None, "Run folder with checkpoints (p2p.main's).")
_INPUT = flags.DEFINE_string("input", None, "A map image, or a folder of them.")
_OUTPUT = flags.DEFINE_string("output", None, "Output image (one input) or folder.")
_STEP = flags.DEFINE_integer("step", None, "Checkpoint step; default: the newest.")
_NORM = flags.DEFINE_enum("norm", "batch", ["batch", "running"],
                          "batch: per-image statistics + dropout (paper); running: eval mode.")
_OVERLAP = flags.DEFINE_integer("overlap", None, "Tile overlap in px; default: half the model "
                                "size (seamless).")
_SEED = flags.DEFINE_integer("seed", 0, "PRNG seed for dropout (batch norm mode).")
_PAIR = flags.DEFINE_bool("pair", False, "Inputs are side-by-side pix2pix pairs: translate the "
                          "half the run's direction takes as input.")
_MAX_PIXELS = flags.DEFINE_integer("max_pixels", cli.DEFAULT_MAX_PIXELS, "Refuse inputs with "
                                   "more pixels than this (read from the header); 0 = no limit.")
_FORMAT = flags.DEFINE_enum("format", "auto", list(FORMATS), "Output format unless --output "
                            "names a file; auto: PNG when it holds the target, else TIFF "
                            "(GeoTIFF inputs: TIFF).")
flags.mark_flags_as_required(["workdir", "input", "output"])


def plan(source: Path, output: Path) -> list[tuple[Path, Path, bool]]:
  """(input, output, named): a named output is the user's file; others get <stem><suffix>."""
  if not source.exists():
    raise DataError(f"--input={source} does not exist.")
  if source.is_dir():
    inputs = sorted(p for p in source.iterdir() if p.is_file() and is_image(p))
    if not inputs:
      raise DataError(f"--input={source} holds no {'/'.join(SUFFIXES)} images.")
    if output.suffix.lower() in SUFFIXES:
      raise DataError(f"--output={output} must be a folder when --input is a folder.")
    return [(p, output / p.stem, False) for p in inputs]
  if output.is_dir() or output.suffix.lower() not in SUFFIXES:
    return [(source, output / source.stem, False)]
  return [(source, output, True)]


def output_suffix(channels: int, dtype: str, fmt: str, georeferenced: bool) -> str:
  """--format's suffix, else TIFF for a georeferenced input, else the target's own format."""
  if fmt != "auto":
    return f".{fmt}"
  return ".tif" if georeferenced else default_suffix(channels, dtype)


def check_format(output: Path, fmt: str) -> None:
  """A ValueError when --format names another format than a named --output's suffix."""
  suffix = {".tiff": ".tif"}.get(output.suffix.lower(), output.suffix.lower())
  if fmt != "auto" and suffix != f".{fmt}":
    raise DataError(f"--format={fmt} contradicts --output={output}; drop --format or change "
                     f"the suffix.")


def main(argv: list[str]) -> None:
  """Loads the generator once, then translates every input."""
  cli.check_args(argv)
  cli.quiet_library_logs()
  import jax

  import p2p
  jobs = plan(Path(_INPUT.value), Path(_OUTPUT.value))
  if jobs[0][2]:
    check_format(jobs[0][1], _FORMAT.value)
  gen = p2p.load(_WORKDIR.value, _STEP.value)
  named = jobs[0][2]
  cli.check_writable(jobs[0][1] if named else jobs[0][1].parent, "--output", folder=not named)
  failed = []
  for i, (source, target, is_named) in enumerate(jobs):
    try:
      image = read_input(source, _MAX_PIXELS.value)
      if _PAIR.value:
        if image.shape[1] != 2 * image.shape[0]:
          raise ValueError(f"{source} is {image.shape[1]}x{image.shape[0]}, not a side-by-side "
                           f"pair (width = 2 x height); drop --pair to translate it whole.")
        image = np.ascontiguousarray(split_pair(image, gen.data.direction)[0])
      image = model_input(image, gen.channels[0], source)
      out = p2p.translate_image(gen, image, overlap=_OVERLAP.value, norm=_NORM.value,
                                rng=jax.random.PRNGKey(_SEED.value + i))
      geotags = () if _PAIR.value else read_geotags(source)
      if not is_named:
        suffix = output_suffix(out.shape[-1], out.dtype.name, _FORMAT.value, bool(geotags))
        target = target.with_name(target.name + suffix)
      if geotags and target.suffix.lower() not in (".tif", ".tiff"):
        logging.warning("%s is georeferenced but %s is not a TIFF: the georeferencing is "
                        "dropped (write .tif to keep it).", source, target)
        geotags = ()
      write_image(target, out, geotags=geotags)
    except (ValueError, OSError) as e:
      reason = cli.path_error(e) if isinstance(e, OSError) else str(e)
      if source.name not in reason:
        reason = f"{source}: {reason}"
      if len(jobs) == 1:
        cli.fail(reason)
      logging.error("%s", reason)
      failed.append(source)
      continue
    print(f"{source} -> {target} ({out.shape[1]}x{out.shape[0]}, {out.shape[-1]} x "
          f"{out.dtype.name})")
  if failed:
    cli.fail(f"{len(failed)} of {len(jobs)} inputs could not be translated (see above): "
             f"{', '.join(str(p) for p in failed)}")


def run() -> None:
  """The p2p-translate console script."""
  cli.run(main)


if __name__ == "__main__":
  run()
