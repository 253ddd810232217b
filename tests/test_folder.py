"""The side-by-side pair format: halves, direction, and a named error for every bad input."""

import logging
import re

import numpy as np
import pytest
from conftest import make_dataset, write_pair

from p2p.config import DataConfig
from p2p.data import DataError, FolderSource, load_pair, scan_split, split_pair
from p2p.data.layouts import PairFiles


def _cfg(root, **kw):
  return DataConfig(data_dir=str(root), patch_size=8, image_size=8, load_size=8, **kw)


def _pair(h=32):
  photo = np.zeros((h, h, 3), np.uint8)
  map_ = np.full((h, h, 3), 255, np.uint8)
  return np.concatenate([photo, map_], axis=1)


def test_split_pair_direction():
  pair = _pair()
  for direction in ("map_to_satellite", "BtoA"):
    inp, tgt = split_pair(pair, direction)
    assert inp.shape == tgt.shape == (32, 32, 3)
    assert (inp == 255).all() and (tgt == 0).all()  # input = map = right half = B
  for direction in ("satellite_to_map", "AtoB"):
    inp, tgt = split_pair(pair, direction)
    assert (inp == 0).all() and (tgt == 255).all()
  with pytest.raises(DataError, match="direction"):
    split_pair(pair, "left_to_right")


def test_natural_order(tmp_path):
  make_dataset(tmp_path, {"train": 11})
  names = [p.name for p in scan_split(_cfg(tmp_path, val_fraction=0.0), "train").pairs]
  assert names == [f"{i}.jpg" for i in range(1, 12)]


def test_missing_root_names_path(tmp_path):
  with pytest.raises(DataError, match=f"{tmp_path / 'nope'}.*does not exist"):
    scan_split(_cfg(tmp_path / "nope"), "train")


@pytest.mark.parametrize("name,command", [
    ("synthetic", "python -m p2p.data.synthetic --out"), ("maps", "python -m p2p.data.download"),
    ("mine", "data.data_dir")])
def test_missing_root_suggests_the_command_that_fills_it(tmp_path, name, command):
  with pytest.raises(DataError, match=re.escape(command)):
    scan_split(_cfg(tmp_path / "data" / name), "train")


def test_missing_split_names_path(tiny_dataset):
  with pytest.raises(DataError, match=r"test does not exist.*\['train', 'val'\]"):
    scan_split(_cfg(tiny_dataset), "test")


def test_empty_split(tmp_path):
  (tmp_path / "train").mkdir()
  (tmp_path / "train" / "notes.txt").write_text("hi")
  with pytest.raises(DataError, match="holds no images"):
    scan_split(_cfg(tmp_path), "train")


def test_undecodable_file_named(tiny_dataset):
  bad = tiny_dataset / "train" / "3.jpg"
  bad.write_bytes(b"this is not a jpeg")
  with pytest.raises(DataError, match=f"{bad} is not a decodable image.*skip_bad_files"):
    scan_split(_cfg(tiny_dataset), "train")
  with pytest.raises(DataError, match=f"{bad} is not a decodable image"):
    load_pair(PairFiles(bad.name, str(bad)))


def test_truncated_jpeg(tiny_dataset):
  bad = tiny_dataset / "train" / "2.jpg"
  data = bad.read_bytes()
  bad.write_bytes(data[:len(data) // 2])
  with pytest.raises(DataError, match=f"{bad} is not a decodable image"):
    scan_split(_cfg(tiny_dataset), "train", verify=True)
  # Header-only scanning lets it through; loading it then fails with the same named error.
  scan = scan_split(_cfg(tiny_dataset), "train", verify=False)
  with pytest.raises(DataError, match=f"{bad} is not a decodable image"):
    FolderSource(scan.pairs)[1]


def test_wrong_width(tiny_dataset):
  bad = tiny_dataset / "val" / "2.jpg"
  write_pair(bad, np.zeros((64, 64, 3), np.uint8), np.zeros((64, 32, 3), np.uint8))
  with pytest.raises(DataError, match=f"{bad} is 96x64.*twice as wide"):
    scan_split(_cfg(tiny_dataset), "val")


def test_skip_bad_files_logs_each_and_count(tiny_dataset, caplog):
  (tiny_dataset / "train" / "2.jpg").write_bytes(b"garbage")
  write_pair(tiny_dataset / "train" / "5.jpg", np.zeros((8, 8, 3), np.uint8),
             np.zeros((8, 24, 3), np.uint8))
  with caplog.at_level(logging.WARNING):
    scan = scan_split(_cfg(tiny_dataset, skip_bad_files=True), "train")
  assert [p.name for p in scan.pairs] == ["1.jpg", "3.jpg", "4.jpg", "6.jpg"]
  text = caplog.text
  assert "2.jpg" in text and "5.jpg" in text and "Skipped 2 of 6 pairs" in text


def test_folder_source_and_png(tmp_path):
  rng = np.random.default_rng(0)
  photo = rng.integers(0, 256, (16, 16, 3), np.uint8)
  write_pair(tmp_path / "train" / "1.png", photo, 255 - photo)
  source = FolderSource(scan_split(_cfg(tmp_path), "train").pairs)
  record = source[0]
  assert record["name"] == "1.png" and len(source) == 1
  np.testing.assert_array_equal(record["a"], photo)  # PNG is lossless; A is the left half
  np.testing.assert_array_equal(record["b"], 255 - photo)


def test_real_maps_format(real_maps):
  scan = scan_split(_cfg(real_maps, verify_images=False), "train")
  assert len(scan.pairs) == 1096 and scan.pairs[0].name == "1.jpg"
  assert scan.layout.kind == "side_by_side" and scan.val_source == "folder"
  assert (scan.a.channels, scan.a.dtype, scan.b.channels) == (3, "uint8", 3)
  a, b = load_pair(scan.pairs[0])
  assert a.shape == b.shape == (600, 600, 3) and a.dtype == np.uint8
  inp, tgt = split_pair(np.concatenate([a, b], axis=1), "map_to_satellite")
  # Google maps are flat and light; aerial photos are darker and textured.
  assert inp.mean() > tgt.mean()
  assert np.abs(np.diff(inp.astype(int), axis=1)).mean() < np.abs(
      np.diff(tgt.astype(int), axis=1)).mean()
