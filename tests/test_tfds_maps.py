"""TFDS pix2pix_maps: built from a folder without TensorFlow, read back identical to the folder."""

import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import make_dataset, write_pair
from p2p.data import tfds_maps
from p2p.data.errors import DataError
from p2p.data.folder import FolderSource, list_images
from p2p.data.layouts import PairFiles

SIZES = {"train": 5, "val": 3, "test": 2}


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> tuple[Path, Path]:
  """A tiny folder (64x64 halves, with a test split) and its prepared TFDS data_dir."""
  root = tmp_path_factory.mktemp("tfds")
  manual_dir = make_dataset(root / "maps", SIZES)
  write_pair(manual_dir / "train" / "10.jpg", *_halves(64))  # 10 sorts after 2, as in the folder.
  data_dir = root / "tfds"
  tfds_maps.prepare(manual_dir, data_dir)
  return manual_dir, data_dir


def _halves(height: int) -> tuple[np.ndarray, np.ndarray]:
  photo = np.full((height, height, 3), 40, np.uint8)
  return photo, 255 - photo


def test_prepare_writes_array_record_splits(prepared):
  _, data_dir = prepared
  path = tfds_maps.dataset_dir(data_dir)
  assert (path / "dataset_info.json").is_file()
  for split in SIZES:
    assert list(path.glob(f"pix2pix_maps-{split}.array_record-*"))


@pytest.mark.parametrize("split", sorted(SIZES))
def test_source_matches_folder(prepared, split):
  manual_dir, data_dir = prepared
  folder = FolderSource([PairFiles(p.name, str(p)) for p in list_images(manual_dir, split)])
  source = tfds_maps.TfdsSource(data_dir, split)
  assert len(source) == len(folder) == SIZES[split] + (split == "train")
  for index in range(len(source)):
    got, want = source[index], folder[index]
    assert got["name"] == want["name"] and isinstance(got["name"], str)
    for side in ("a", "b"):
      assert got[side].dtype == np.uint8 and got[side].shape == want[side].shape == (64, 64, 3)
      np.testing.assert_array_equal(got[side], want[side])


def test_jpeg_bytes_are_stored_unchanged(prepared):
  manual_dir, data_dir = prepared
  import tensorflow_datasets as tfds
  builder = tfds.builder_from_directory(str(tfds_maps.dataset_dir(data_dir)))
  records = builder.as_data_source("val", decoders={"image": tfds.decode.SkipDecoding()})
  for record in records:
    name = record["file_name"].decode()
    assert record["image"] == (manual_dir / "val" / name).read_bytes()


def test_source_pickles_and_reads_after_use(prepared):
  _, data_dir = prepared
  source = tfds_maps.TfdsSource(data_dir, "train")
  first = source[0]
  clone = pickle.loads(pickle.dumps(source))
  assert len(clone) == len(source)
  np.testing.assert_array_equal(clone[0]["a"], first["a"])
  assert clone[0]["name"] == first["name"]


def test_missing_prepared_dataset_names_path_and_fix(tmp_path):
  with pytest.raises(DataError, match=r"No prepared pix2pix_maps dataset at .*p2p.data.tfds_maps"):
    tfds_maps.TfdsSource(tmp_path / "empty", "train")


def test_missing_split_is_a_data_error(prepared, tmp_path):
  manual_dir = make_dataset(tmp_path / "maps", {"train": 2, "val": 1})
  data_dir = tmp_path / "tfds"
  tfds_maps.prepare(manual_dir, data_dir)
  with pytest.raises(DataError, match="Split 'test' is not in"):
    tfds_maps.TfdsSource(data_dir, "test")


def test_bad_manual_dir_gives_folder_error(tmp_path):
  with pytest.raises(DataError, match="does not exist"):
    tfds_maps.prepare(tmp_path / "nowhere", tmp_path / "tfds")
  make_dataset(tmp_path / "half", {"train": 2})
  with pytest.raises(DataError, match=r"val split pairs folder .*val does not exist"):
    tfds_maps.prepare(tmp_path / "half", tmp_path / "tfds")
  assert not (tmp_path / "tfds").exists()


def test_wrong_pair_shape_is_rejected_at_build(tmp_path):
  manual_dir = make_dataset(tmp_path / "maps", {"train": 1, "val": 1})
  square = np.zeros((64, 32, 3), np.uint8)
  write_pair(manual_dir / "val" / "2.jpg", square, square)
  with pytest.raises(DataError, match=r"2\.jpg is 64x64"):
    tfds_maps.prepare(manual_dir, tmp_path / "tfds")


@pytest.mark.slow
def test_cli_prepares(tmp_path):
  manual_dir = make_dataset(tmp_path / "maps", {"train": 2, "val": 1})
  data_dir = tmp_path / "tfds"
  result = subprocess.run(
      [sys.executable, "-m", "p2p.data.tfds_maps", f"--manual_dir={manual_dir}",
       f"--data_dir={data_dir}"], capture_output=True, text=True, timeout=120,
      cwd=Path(__file__).resolve().parents[1])
  assert result.returncode == 0, result.stderr
  assert len(tfds_maps.TfdsSource(data_dir, "train")) == 2
