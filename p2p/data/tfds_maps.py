"""The pix2pix maps folder as a TFDS ArrayRecord dataset, built and read without TensorFlow.

Prepare once, then read with random access (Grain):
  python -m p2p.data.tfds_maps --manual_dir=/data/maps --data_dir=/data/tfds
"""

from __future__ import annotations

import argparse
import io
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import tensorflow_datasets as tfds
from PIL import Image

from p2p.cli import fail
from p2p.data.errors import DataError
from p2p.data.folder import check_pair_shape, list_images

NAME = "pix2pix_maps"
DATA_VERSION = "1.0.0"
REQUIRED_SPLITS = ("train", "val")
OPTIONAL_SPLITS = ("test",)


# Under `python -m` this module is also __main__; only the imported p2p.data.tfds_maps registers.
class Pix2pixMaps(tfds.core.GeneratorBasedBuilder, skip_registration=__name__ == "__main__"):
  """Side-by-side (photo | map) JPEG pairs of the pix2pix maps dataset, stored byte for byte."""

  VERSION = tfds.core.Version(DATA_VERSION)
  RELEASE_NOTES = {DATA_VERSION: "Initial release: train, val (and test when present)."}
  MANUAL_DOWNLOAD_INSTRUCTIONS = (
      "Extract the pix2pix maps.tar.gz (e.g. with `python -m p2p.data.download --out DIR`) and "
      "pass the folder holding train/ and val/ (and optionally test/) as manual_dir.")

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
        description="pix2pix maps: aerial photo (left) and Google map (right), side by side.",
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Image(shape=(None, None, 3), encoding_format="jpeg"),
            "file_name": tfds.features.Text(),
        }),
        homepage="https://phillipi.github.io/pix2pix/",
        # Keep the folder's (natural) order, so index i here is index i of FolderSource.
        disable_shuffling=True,
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager) -> dict:
    paths = split_paths(dl_manager.manual_dir)
    return {split: self._generate_examples(split_files) for split, split_files in paths.items()}

  def _generate_examples(self, paths: Sequence[Path]) -> Iterator[tuple[int, dict]]:
    for index, path in enumerate(paths):
      with Image.open(path) as image:
        width, height = image.size
      check_pair_shape((height, width), path)
      # A path makes TFDS store the file's bytes as they are: no JPEG re-encode.
      yield index, {"image": path, "file_name": path.name}


def split_paths(manual_dir: str | os.PathLike) -> dict[str, list[Path]]:
  """Image paths per split; raises the folder reader's DataError for a bad manual_dir."""
  paths = {split: list_images(manual_dir, split) for split in REQUIRED_SPLITS}
  for split in OPTIONAL_SPLITS:
    if (Path(manual_dir).expanduser() / split).is_dir():
      paths[split] = list_images(manual_dir, split)
  return paths


def prepare(manual_dir: str | os.PathLike, data_dir: str | os.PathLike) -> Pix2pixMaps:
  """Builds the ArrayRecord dataset from an extracted maps folder into data_dir."""
  manual_dir = Path(manual_dir).expanduser().resolve()
  split_paths(manual_dir)  # Fail with a clear message before TFDS starts writing.
  builder = Pix2pixMaps(data_dir=os.fspath(Path(data_dir).expanduser()))
  builder.download_and_prepare(
      file_format="array_record",
      download_config=tfds.download.DownloadConfig(manual_dir=os.fspath(manual_dir)))
  return builder


def dataset_dir(data_dir: str | os.PathLike) -> Path:
  """The folder that prepare() writes: data_dir/pix2pix_maps/1.0.0."""
  return Path(data_dir).expanduser() / NAME / DATA_VERSION


class TfdsSource:
  """Random-access grain source over a prepared split; yields {'a', 'b', 'name'}."""

  def __init__(self, data_dir: str | os.PathLike, split: str):
    self._data_dir = str(Path(data_dir).expanduser())
    self._split = split
    self._source = None
    path = dataset_dir(self._data_dir)
    if not (path / "dataset_info.json").is_file():
      raise DataError(
          f"No prepared {NAME} dataset at {path}. Run `python -m p2p.data.tfds_maps "
          f"--manual_dir=<folder with train/ and val/> --data_dir={self._data_dir}` first.")
    splits = tfds.builder_from_directory(os.fspath(path)).info.splits
    if split not in splits:
      raise DataError(
          f"Split {split!r} is not in the {NAME} dataset at {path} (found: {sorted(splits)}). "
          f"Delete {path} and re-run prepare with a manual_dir holding {split}/.")

  def _open(self):
    if self._source is None:
      builder = tfds.builder_from_directory(os.fspath(dataset_dir(self._data_dir)))
      # Keep the JPEG bytes: they are decoded below exactly as folder.load_pair decodes a file.
      self._source = builder.as_data_source(
          self._split, decoders={"image": tfds.decode.SkipDecoding()})
    return self._source

  def __len__(self) -> int:
    return len(self._open())

  def __getitem__(self, index: int) -> dict:
    record = self._open()[index]
    name = _text(record["file_name"])
    pair = _decode_pair(_bytes(record["image"]), name)
    width = pair.shape[1] // 2
    return {"a": pair[:, :width], "b": pair[:, width:], "name": name}

  def __getstate__(self) -> dict:
    # The ArrayRecord readers hold open files; workers reopen them lazily.
    return {**self.__dict__, "_source": None}

  def __repr__(self) -> str:
    return f"TfdsSource({self._data_dir}, split={self._split!r})"


def _decode_pair(data: bytes, name: str) -> np.ndarray:
  """Decodes stored JPEG bytes exactly as folder.load_pair decodes the file."""
  try:
    with Image.open(io.BytesIO(data)) as image:
      image.load()
      pair = np.asarray(image.convert("RGB"))
  except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
    raise DataError(f"Record {name} of the {NAME} dataset does not decode ({e}). "
                    f"Re-run prepare from a clean copy of the folder.") from None
  check_pair_shape(pair.shape, name)
  return pair


def _bytes(value) -> bytes:
  return value if isinstance(value, bytes) else bytes(np.asarray(value).item())


def _text(value) -> str:
  value = value if isinstance(value, (bytes, str)) else np.asarray(value).item()
  return value.decode("utf-8") if isinstance(value, bytes) else value


def cli(argv: Sequence[str] | None = None) -> None:
  """Command line: python -m p2p.data.tfds_maps --manual_dir=DIR --data_dir=DIR."""
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--manual_dir", required=True, help="folder holding train/ and val/")
  parser.add_argument("--data_dir", required=True, help="TFDS data folder to write into")
  args = parser.parse_args(argv)
  try:
    builder = prepare(args.manual_dir, args.data_dir)
  except DataError as e:
    fail(str(e))
  sizes = {name: split.num_examples for name, split in builder.info.splits.items()}
  print(f"Prepared {NAME} at {dataset_dir(args.data_dir)}: {sizes}")


if __name__ == "__main__":
  # TFDS needs the builder in a real package module, not __main__: run the imported module's cli.
  from p2p.data import tfds_maps
  tfds_maps.cli()
