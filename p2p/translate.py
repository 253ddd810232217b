"""p2p-translate --workdir=RUN --input=MAP.png --output=PHOTO.png: maps of any size (python -m p2p.translate).

--input is one image or a folder of them (JPEG or PNG, any mode: RGB, RGBA, L, P); --output is
a file (one input) or a folder (written as <name>.png). Images larger than the model size are
translated in overlapping tiles blended without seams; smaller ones are padded.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from absl import app, flags

from p2p import cli

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")

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
flags.mark_flags_as_required(["workdir", "input", "output"])


def plan(source: Path, output: Path) -> list[tuple[Path, Path]]:
  """(input, output) paths: one file to a file or folder, or a folder to a folder."""
  if not source.exists():
    raise FileNotFoundError(f"--input={source} does not exist.")
  if source.is_dir():
    inputs = sorted(p for p in source.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not inputs:
      raise FileNotFoundError(f"--input={source} holds no .jpg/.jpeg/.png images.")
    if output.suffix.lower() in IMAGE_SUFFIXES:
      raise ValueError(f"--output={output} must be a folder when --input is a folder.")
    return [(p, output / f"{p.stem}.png") for p in inputs]
  if output.is_dir() or output.suffix.lower() not in IMAGE_SUFFIXES:
    return [(source, output / f"{source.stem}.png")]
  return [(source, output)]


def main(argv: list[str]) -> None:
  """Loads the generator once, then translates every input."""
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  cli.quiet_library_logs()
  import jax
  import numpy as np
  from PIL import Image

  import p2p
  from p2p.data.folder import split_pair
  from p2p.data.images import load_image
  try:
    jobs = plan(Path(_INPUT.value), Path(_OUTPUT.value))
    gen = p2p.load(_WORKDIR.value, _STEP.value)
  except (FileNotFoundError, ValueError) as e:
    sys.exit(f"error: {e}")
  failed = []
  for i, (source, target) in enumerate(jobs):
    try:
      image = load_image(source)
      if _PAIR.value:
        if image.shape[1] != 2 * image.shape[0]:
          raise ValueError(f"{source} is {image.shape[1]}x{image.shape[0]}, not a side-by-side "
                           f"pair (width = 2 x height); drop --pair to translate it whole.")
        image = np.ascontiguousarray(split_pair(image, gen.direction)[0])
      out = p2p.translate_image(gen, image, overlap=_OVERLAP.value, norm=_NORM.value,
                          rng=jax.random.PRNGKey(_SEED.value + i))
    except ValueError as e:
      logging.error("%s", e)
      failed.append(source)
      continue
    target.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(out).save(target, **({"quality": 95} if target.suffix.lower() != ".png"
                                         else {}))
    print(f"{source} -> {target} ({out.shape[1]}x{out.shape[0]})")
  if failed:
    sys.exit(f"error: {len(failed)} of {len(jobs)} inputs could not be translated: "
             f"{', '.join(str(p) for p in failed)}")


def run() -> None:
  """The p2p-translate console script."""
  cli.run(main)


if __name__ == "__main__":
  run()
