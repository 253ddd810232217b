"""Own data as it is: layouts found and matched, hold-out val, any channels, one clear error for
each malformed dataset."""

import numpy as np
import pytest
from conftest import make_dataset

from p2p.config import DataConfig
from p2p.data import DataError
from p2p.data.io import write_image
from p2p.data.layouts import detect, holdout, in_holdout, stem_hash
from p2p.data.pipeline import (eval_dataset, make_iterator, make_split, resolve, summary,
                               train_dataset)

RNG = np.random.default_rng(0)


def _cfg(root, **kw):
  defaults = dict(data_dir=str(root), patch_size=32, image_size=32, load_size=36, num_threads=1)
  return DataConfig(**{**defaults, **kw})


def _write_folders(root, names_a, names_b=None, size=(40, 48), a_kind=("png", np.uint16, 1),
                   b_kind=("tif", np.uint16, 4), split="train", a_dir="A", b_dir="B"):
  """A/B files under root/split/{A,B} (or given folders); B = a function of A."""
  names_b = names_a if names_b is None else names_b
  for name in sorted(set(names_a) | set(names_b)):
    base = RNG.integers(0, 1000, (*size, 1))
    for names, folder, (suffix, dtype, channels) in ((names_a, a_dir, a_kind),
                                                      (names_b, b_dir, b_kind)):
      if name in names:
        image = np.repeat(base, channels, axis=-1).astype(dtype)
        write_image(root / folder.format(split=split) / f"{name}.{suffix}", image)
  return root


def test_layouts_are_detected_from_the_folders(tmp_path):
  make_dataset(tmp_path / "sbs", {"train": 1})
  assert detect(tmp_path / "sbs").kind == "side_by_side"
  _write_folders(tmp_path / "folders", ["t1"], a_dir="train/A", b_dir="train/B")
  assert detect(tmp_path / "folders").kind == "folders"
  _write_folders(tmp_path / "torch", ["t1"], a_dir="A/train", b_dir="B/train")
  assert detect(tmp_path / "torch") == detect(tmp_path, "explicit", "A/{split}", "B/{split}")
  _write_folders(tmp_path / "flat", ["t1"], a_dir="A", b_dir="B")
  layout = detect(tmp_path / "flat")
  assert (layout.kind, layout.a_dir, layout.has_splits) == ("explicit", "A", False)


def test_folders_pair_by_stem_across_extensions(tmp_path):
  root = _write_folders(tmp_path, ["tile_002", "tile_010", "tile_001"],
                        a_dir="train/A", b_dir="train/B")
  cfg, scan = resolve(_cfg(root, direction="AtoB", val_fraction=0.0))  # all of them in train
  assert [p.name for p in scan.pairs] == ["tile_001", "tile_002", "tile_010"]
  assert scan.pairs[0].a.endswith("A/tile_001.png") and scan.pairs[0].b.endswith(
      "B/tile_001.tif")
  assert (cfg.layout, cfg.a_channels, cfg.b_channels, cfg.a_dtype) == ("folders", 1, 4,
                                                                       "uint16")
  assert cfg.a_range == cfg.b_range == (0.0, 65535.0)
  assert cfg.model_channels() == (1, 4) and cfg.val_source == "holdout"
  assert "layout folders, 3 train pairs" in summary(cfg, 3)


def test_explicit_folders_with_split_template(tmp_path):
  for split in ("train", "val"):
    _write_folders(tmp_path, ["a", "b"], split=split, a_dir="sar/{split}",
                   b_dir="optical/{split}_rgb", b_kind=("png", np.uint8, 3))
  cfg = _cfg(tmp_path, a_dir="sar/{split}", b_dir="optical/{split}_rgb", direction="AtoB")
  data, _ = resolve(cfg)
  assert (data.layout, data.val_source, data.b_dtype) == ("explicit", "folder", "uint8")
  split = make_split(data, "val", equal_shards=False)
  batch = next(iter(eval_dataset(data, split, batch_size=2)))
  assert batch["input"].shape == (2, 32, 32, 1) and batch["target"].shape == (2, 32, 32, 3)


def test_unmatched_names_list_both_sides_and_counts(tmp_path):
  root = _write_folders(tmp_path, ["a1", "a2", "both"], ["both", "b1"], a_dir="train/A",
                        b_dir="train/B")
  with pytest.raises(DataError, match=r"\(3 files\).*\(2 files\).*1 matched, 2 only in A.*"
                                      r"'a1.png', 'a2.png'.*1 only in B.*'b1.tif'"):
    resolve(_cfg(root))
  _, scan = resolve(_cfg(root, skip_bad_files=True))
  assert [p.name for p in scan.pairs] == ["both"]


def test_two_files_with_one_stem_is_an_error(tmp_path):
  root = _write_folders(tmp_path, ["x"], a_dir="train/A", b_dir="train/B")
  write_image(root / "train" / "A" / "x.npy", np.zeros((40, 48, 1), np.uint16))
  with pytest.raises(DataError, match="both x.npy and x.png"):
    resolve(_cfg(root))


def test_pair_of_different_sizes_names_both_files(tmp_path):
  root = _write_folders(tmp_path, ["x"], a_dir="train/A", b_dir="train/B")
  write_image(root / "train" / "B" / "x.tif", np.zeros((40, 50, 4), np.uint16))
  with pytest.raises(DataError, match=r"A/x.png is 48x40 but its partner .*B/x.tif is 50x40"):
    resolve(_cfg(root))


def test_mixed_channels_or_bit_depth_on_one_side(tmp_path):
  root = _write_folders(tmp_path, ["x", "y", "z"], a_dir="train/A", b_dir="train/B")
  write_image(root / "train" / "A" / "z.png", np.zeros((40, 48, 1), np.uint8))
  with pytest.raises(DataError, match=r"A/z.png has 1 channel\(s\) of uint8 but the other A "
                                      r"images have 1 of uint16"):
    resolve(_cfg(root))


@pytest.mark.parametrize("size,preprocess,match", [
    ((1, 1), "patches", "is 1x1 px.*smaller than the 32 px crop"),
    ((20, 60), "patches", "is 60x20 px.*smaller than the 32 px crop"),
    ((20, 60), "resize", "is 60x20 px.*smaller than the 32 px crop.*data.image_size")])
def test_too_small_images(tmp_path, size, preprocess, match):
  root = _write_folders(tmp_path, ["big"], a_dir="train/A", b_dir="train/B")
  _write_folders(root, ["small"], size=size, a_dir="train/A", b_dir="train/B")
  with pytest.raises(DataError, match=match):
    resolve(_cfg(root, preprocess=preprocess))


def test_float_values_outside_the_default_range_ask_for_a_range(tmp_path):
  root = tmp_path
  for name in ("p", "q"):
    write_image(root / "train" / "A" / f"{name}.npy", RNG.random((40, 48, 2)).astype("f4") * 5)
    write_image(root / "train" / "B" / f"{name}.npy", RNG.random((40, 48, 3)).astype("f4"))
  with pytest.raises(DataError, match=r"p.npy has values in \[.*\].*set data.a_range="):
    resolve(_cfg(root, val_fraction=0.0))
  data, _ = resolve(_cfg(root, a_range=(0.0, 5.0), val_fraction=0.0))
  assert (data.a_range, data.b_range, data.a_dtype) == ((0.0, 5.0), (0.0, 1.0), "float32")
  it = make_iterator(data, train_dataset(data, make_split(data, "train"), batch_size=2, seed=0))
  batch = next(it)
  assert batch["target"].shape == (2, 32, 32, 2)  # BtoA: input = B (3), target = A (2)
  assert -1 <= batch["target"].min() and batch["target"].max() <= 1


def test_holdout_is_a_stable_hash_of_the_stem(tmp_path):
  names = [f"tile_{i:03d}" for i in range(60)]
  root = _write_folders(tmp_path, names, a_dir="train/A", b_dir="train/B", size=(32, 32))
  cfg = _cfg(root, val_fraction=0.2, verify_images=False)
  train = [p.name for p in make_split(cfg, "train").source._pairs]
  val = [p.name for p in make_split(cfg, "val", equal_shards=False).source._pairs]
  assert sorted(train + val) == sorted(names) and not set(train) & set(val)
  assert val == [n for n in names if in_holdout(n, 0.2)] and 4 <= len(val) <= 20
  # Too few pairs for the fraction to catch one: the lowest hash is held out all the same.
  assert holdout(["a", "b", "c"], 0.05) == {min("abc", key=stem_hash)}
  assert holdout(["a", "b", "c"], 0.0) == set() and holdout(["a"], 0.05) == set()
  # The same stems in another dataset (other extensions) fall on the same side.
  assert in_holdout("tile_007.png", 0.2) == in_holdout("tile_007", 0.2)


def test_non_square_images_resize_keeps_the_aspect(tmp_path):
  """resize: shorter side to load_size, aspect kept, then the crop (scale_width_and_crop)."""
  ramp = np.tile(np.linspace(0, 65535, 96)[None, :, None], (48, 1, 1)).astype(np.uint16)
  for name in ("wide1", "wide2"):
    write_image(tmp_path / "train" / "A" / f"{name}.png", ramp)
    write_image(tmp_path / "train" / "B" / f"{name}.png", ramp)
  cfg = _cfg(tmp_path, preprocess="resize", flip=False, load_size=32, val_source="holdout",
             val_fraction=0.0)
  data, scan = resolve(cfg)
  assert scan.sizes.tolist() == [[48, 96], [48, 96]]
  seen = set()
  for seed in range(8):
    batch = next(iter(train_dataset(data, make_split(data, "train", scan=scan), batch_size=1,
                                    seed=seed)))
    row = batch["input"][0, 0, :, 0]
    assert np.all(np.diff(row) > 0)  # still a ramp: not squashed, not flipped
    seen.add(round(float(row[0]), 2))
  assert len(seen) > 1  # the crop moves along the long side


def test_training_on_a_malformed_dataset_stops_with_one_line(tmp_path):
  import subprocess
  import sys
  root = _write_folders(tmp_path / "data", ["a1", "both"], ["both", "b1"], a_dir="train/A",
                        b_dir="train/B")
  result = subprocess.run([sys.executable, "-m", "p2p.main", "--config=configs/demo.py:tiny",
                           f"--workdir={tmp_path / 'run'}", f"--config.data.data_dir={root}"],
                          capture_output=True, text=True, timeout=120,
                          cwd=__import__("pathlib").Path(__file__).parents[1])
  assert result.returncode == 2
  assert "error: " in result.stderr and "only in A (first 5: ['a1.png'])" in result.stderr
  assert "Traceback" not in result.stderr + result.stdout


def test_folders_shard_and_resume_like_the_maps(tmp_path):
  root = _write_folders(tmp_path, [f"t{i}" for i in range(6)], a_dir="train/A",
                        b_dir="train/B", size=(40, 72))
  cfg = _cfg(root, val_source="holdout", val_fraction=0.0, verify_images=False)
  shards = [make_split(cfg, "train", process_index=p, process_count=2) for p in range(2)]
  assert [s.num_examples for s in shards] == [3 * 6] * 2  # 3 images x (2 x 3 patches) each
  assert not set(shards[0].image_indices) & set(shards[1].image_indices)
  ds = train_dataset(cfg, shards[0], batch_size=2, seed=0)
  it = make_iterator(cfg, ds)
  next(it)
  state = it.get_state()
  want = [next(it) for _ in range(3)]
  again = make_iterator(cfg, ds)
  again.set_state(state)
  for x, y in zip(want, [next(again) for _ in range(3)]):
    np.testing.assert_array_equal(x["input"], y["input"])
    np.testing.assert_array_equal(x["target"], y["target"])
