"""Synthetic maps: file format, determinism, map palette, photo texture, alignment, CLI."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from p2p.data import synthetic
from p2p.data.errors import DataError
from p2p.config import DataConfig
from p2p.data.folder import scan_split, split_pair

SMALL = 128


@pytest.fixture(scope="module")
def small_pairs() -> list[np.ndarray]:
  """Eight raw (un-encoded) 128x256 pairs."""
  return [synthetic.render_pair(synthetic.image_rng(0, 0, i), SMALL) for i in range(1, 9)]


def _luma(image: np.ndarray) -> np.ndarray:
  return image.astype(np.float64) @ [0.299, 0.587, 0.114]


def _class_fit(photo: np.ndarray, map_: np.ndarray) -> float:
  """R^2 of predicting each photo pixel by the mean photo colour of its map colour."""
  classes = np.unique(map_.reshape(-1, 3), axis=0, return_inverse=True)[1].ravel()
  pixels = photo.reshape(-1, 3).astype(np.float64)
  counts = np.bincount(classes)[:, None]
  means = np.stack([np.bincount(classes, pixels[:, c]) for c in range(3)], 1) / counts
  residual = ((pixels - means[classes]) ** 2).sum()
  return 1 - residual / ((pixels - pixels.mean(0)) ** 2).sum()


def test_render_pair_shape_and_dtype():
  pair = synthetic.render_pair(0, 64)
  assert pair.shape == (64, 128, 3) and pair.dtype == np.uint8


def test_render_pair_accepts_seed_sequence_or_generator():
  a = synthetic.render_pair([3, 0, 1], 64)
  b = synthetic.render_pair(synthetic.image_rng(3, 0, 1), 64)
  np.testing.assert_array_equal(a, b)


def test_default_size_format(tmp_path):
  out = synthetic.write_dataset(tmp_path / "maps", train=1, val=1, seed=0)
  for split in ("train", "val"):
    with Image.open(out / split / "1.jpg") as image:
      assert (image.format, image.mode, image.size) == ("JPEG", "RGB", (1200, 600))
  assert len(scan_split(DataConfig(data_dir=str(out)), "train").pairs) == 1


def test_counts_and_names(tmp_path):
  out = synthetic.write_dataset(tmp_path / "maps", train=3, val=2, seed=1, size=64)
  assert sorted(p.name for p in (out / "train").iterdir()) == ["1.jpg", "2.jpg", "3.jpg"]
  assert sorted(p.name for p in (out / "val").iterdir()) == ["1.jpg", "2.jpg"]
  with Image.open(out / "val" / "2.jpg") as image:
    assert image.size == (128, 64)
  photo, map_ = split_pair(np.asarray(Image.open(out / "train" / "1.jpg")), "satellite_to_map")
  assert photo.shape == map_.shape == (64, 64, 3)


def test_no_val_folder_when_val_is_zero(tmp_path):
  out = synthetic.write_dataset(tmp_path / "maps", train=1, val=0, size=64)
  assert (out / "train" / "1.jpg").is_file() and not (out / "val").exists()


def test_same_seed_same_bytes_and_splits_differ(tmp_path):
  a = synthetic.write_dataset(tmp_path / "a", train=2, val=1, seed=7, size=64)
  b = synthetic.write_dataset(tmp_path / "b", train=2, val=1, seed=7, size=64)
  c = synthetic.write_dataset(tmp_path / "c", train=2, val=1, seed=8, size=64)
  for name in ("train/1.jpg", "train/2.jpg", "val/1.jpg"):
    assert (a / name).read_bytes() == (b / name).read_bytes()
    assert (a / name).read_bytes() != (c / name).read_bytes()
  assert (a / "train/1.jpg").read_bytes() != (a / "val/1.jpg").read_bytes()
  assert (a / "train/1.jpg").read_bytes() != (a / "train/2.jpg").read_bytes()


def test_map_half_uses_only_the_map_palette(small_pairs):
  palette = {tuple(c) for c in synthetic.MAP_COLOURS.tolist()}
  for pair in small_pairs:
    colours = {tuple(c) for c in np.unique(pair[:, SMALL:].reshape(-1, 3), axis=0).tolist()}
    assert colours <= palette


def test_photo_is_darker_and_more_textured_than_the_map(small_pairs):
  for pair in small_pairs:
    photo, map_ = _luma(pair[:, :SMALL]), _luma(pair[:, SMALL:])
    assert photo.mean() < map_.mean() - 80
    detail = [np.abs(np.diff(half, axis=1)).mean() for half in (photo, map_)]
    assert detail[0] > 2 * detail[1]


def test_map_classes_explain_the_photo_only_when_aligned(small_pairs):
  gaps = []
  for pair in small_pairs:
    photo, map_ = pair[:, :SMALL], pair[:, SMALL:]
    aligned = _class_fit(photo, map_)
    shifted = max(_class_fit(photo[:, 3:], map_[:, :-3]), _class_fit(photo[3:], map_[:-3]),
                  _class_fit(photo[:, :-3], map_[:, 3:]), _class_fit(photo[:-3], map_[3:]))
    assert aligned > 0.1 and aligned > shifted
    gaps.append(aligned - shifted)
  assert np.mean(gaps) > 0.08


def test_water_in_the_map_is_dark_in_the_photo():
  water = np.array(synthetic.MAP_COLOURS[synthetic.WATER])
  pairs = (synthetic.render_pair(synthetic.image_rng(0, 0, i), SMALL) for i in range(1, 40))
  pair = next(p for p in pairs if (p[:, SMALL:] == water).all(-1).mean() > 0.1)
  mask = (pair[:, SMALL:] == water).all(-1)
  photo = _luma(pair[:, :SMALL])
  assert photo[mask].mean() < 60 < photo[~mask].mean()


def test_rewriting_is_idempotent_but_stale_files_are_refused(tmp_path):
  out = tmp_path / "maps"
  synthetic.write_dataset(out, train=3, val=0, size=32)
  synthetic.write_dataset(out, train=3, val=0, size=32)
  with pytest.raises(DataError, match="3.jpg"):
    synthetic.write_dataset(out, train=2, val=0, size=32)


@pytest.mark.parametrize("kwargs, message", [
    ({"train": 0, "val": 1}, "train=0"),
    ({"train": 1, "val": -1}, "val=-1"),
    ({"train": 1, "val": 1, "seed": -2}, "seed=-2"),
    ({"train": 1, "val": 1, "size": 8}, "size=8"),
])
def test_write_dataset_validates_arguments(tmp_path, kwargs, message):
  with pytest.raises(DataError, match=message):
    synthetic.write_dataset(tmp_path / "maps", **kwargs)
  assert not (tmp_path / "maps").exists()


def test_main_writes_prints_and_returns_the_folder(tmp_path, capsys):
  out = synthetic.main(["--out", str(tmp_path / "maps"), "--train", "2", "--val", "1",
                        "--seed", "3", "--size", "64"])
  assert out == tmp_path / "maps"
  assert len(list((out / "train").glob("*.jpg"))) == 2
  printed = capsys.readouterr().out
  assert "2 train + 1 val" in printed and str(out) in printed


@pytest.mark.parametrize("argv, message", [(["--train", "0"], "train=0"),
                                           (["--val", "-1"], "val=-1"),
                                           (["--size", "16"], "size=16")])
def test_cli_rejects_bad_arguments(tmp_path, capsys, argv, message):
  with pytest.raises(SystemExit) as exit_info:
    synthetic.cli(["--out", str(tmp_path / "maps"), *argv])
  assert exit_info.value.code == 2
  assert message in capsys.readouterr().err


def test_module_runs_as_a_script(tmp_path):
  result = subprocess.run(
      [sys.executable, "-m", "p2p.data.synthetic", "--out", str(tmp_path / "maps"), "--train", "1",
       "--val", "1", "--size", "32"], capture_output=True, text=True, check=False)
  assert result.returncode == 0, result.stderr
  assert "Wrote 1 train + 1 val" in result.stdout
  assert Path(tmp_path / "maps" / "val" / "1.jpg").is_file()
