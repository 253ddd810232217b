"""Grain pipelines: determinism, resume from iterator state, per-process shards, coverage."""

import numpy as np
import pytest
from conftest import make_dataset

from p2p.config import ConfigError, DataConfig
from p2p.data import DataError
from p2p.data.pipeline import (eval_dataset, make_iterator, make_split, shard_indices,
                               steps_per_epoch, train_dataset)


def _cfg(root, **kw):
  defaults = dict(data_dir=str(root), preprocess="patches", patch_size=32, image_size=32,
                  load_size=36, num_threads=2, prefetch_buffer_size=2)
  return DataConfig(**{**defaults, **kw})


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
  """80 px halves: 3x3 cover patches of 32 (starts 0, 24, 48)."""
  return make_dataset(tmp_path_factory.mktemp("maps"), {"train": 5, "val": 3}, height=80)


def _take(it, n):
  return [next(it) for _ in range(n)]


def _assert_batches_equal(a, b):
  assert len(a) == len(b)
  for x, y in zip(a, b):
    for key in ("input", "target"):
      np.testing.assert_array_equal(x[key], y[key])


def test_train_batches_shape_range_and_epoch(dataset):
  cfg = _cfg(dataset)
  split = make_split(cfg, "train")
  assert split.num_examples == 5 * 9
  assert steps_per_epoch(split, 4) == 11
  batch = next(make_iterator(cfg, train_dataset(cfg, split, batch_size=4, seed=0)))
  assert batch["input"].shape == batch["target"].shape == (4, 32, 32, 3)
  assert batch["input"].dtype == np.float32
  assert -1 <= batch["input"].min() and batch["input"].max() <= 1


def test_deterministic_for_a_seed(dataset):
  cfg = _cfg(dataset)
  split = make_split(cfg, "train")
  run = lambda seed: _take(make_iterator(cfg, train_dataset(cfg, split, batch_size=2,
                                                            seed=seed)), 6)
  _assert_batches_equal(run(3), run(3))
  with pytest.raises(AssertionError):
    _assert_batches_equal(run(3), run(4))


def test_epochs_are_reshuffled(dataset):
  cfg = _cfg(dataset, jitter=False, flip=False)
  split = make_split(cfg, "train")
  n = split.num_examples
  batches = _take(make_iterator(cfg, train_dataset(cfg, split, batch_size=1, seed=0)), 2 * n)
  key = lambda b: b["input"][0].tobytes()
  first, second = [key(b) for b in batches[:n]], [key(b) for b in batches[n:]]
  assert sorted(first) == sorted(second)  # each epoch sees every example once
  assert first != second                  # in a new order


def test_resume_from_iterator_state_mid_epoch(dataset):
  cfg = _cfg(dataset)
  ds = train_dataset(cfg, make_split(cfg, "train"), batch_size=2, seed=7)
  straight = _take(make_iterator(cfg, ds), 8)
  it = make_iterator(cfg, ds)
  _take(it, 3)
  state = it.get_state()
  resumed = make_iterator(cfg, ds)
  resumed.set_state(state)
  _assert_batches_equal(_take(resumed, 5), straight[3:])


@pytest.mark.slow
def test_worker_processes_match_threads_and_resume(dataset):
  threads = _cfg(dataset)
  workers = _cfg(dataset, worker_count=2)
  ds = train_dataset(threads, make_split(threads, "train"), batch_size=2, seed=1)
  straight = _take(make_iterator(threads, ds), 6)
  it = make_iterator(workers, ds)
  _assert_batches_equal(_take(it, 3), straight[:3])
  state = it.get_state()
  resumed = make_iterator(workers, ds)
  resumed.set_state(state)
  _assert_batches_equal(_take(resumed, 3), straight[3:])
  it.close()
  resumed.close()


def test_eval_patches_cover_each_half_exactly(dataset):
  cfg = _cfg(dataset)
  split = make_split(cfg, "val", equal_shards=False)
  batches = list(eval_dataset(cfg, split, batch_size=4))
  assert [len(b["input"]) for b in batches] == [4] * 6 + [3]  # 27 patches, last batch short
  patches = np.concatenate([b["target"] for b in batches])[:9]
  canvas = np.zeros((80, 80, 3), np.float32)
  for (_, top, left), patch in zip(split.regions, patches):
    canvas[top:top + 32, left:left + 32] = patch
  photo = split.source[0]["a"]  # map_to_satellite: target = photo (A, the left half)
  np.testing.assert_array_equal(canvas, photo.astype(np.float32) / 127.5 - 1)


def test_eval_is_deterministic_and_unshuffled(dataset):
  cfg = _cfg(dataset, preprocess="resize")
  split = make_split(cfg, "val", equal_shards=False)
  a, b = list(eval_dataset(cfg, split, batch_size=2)), list(eval_dataset(cfg, split,
                                                                         batch_size=2))
  _assert_batches_equal(a, b)
  assert sum(len(x["input"]) for x in a) == 3


def test_shard_indices_disjoint_complete_equal():
  for n in (10, 11, 13):
    for count in (1, 2, 3, 4):
      full = [shard_indices(n, i, count, equal=False) for i in range(count)]
      assert sorted(np.concatenate(full).tolist()) == list(range(n))  # complete and disjoint
      equal = [shard_indices(n, i, count) for i in range(count)]
      assert len({len(s) for s in equal}) == 1                         # same step count
      assert len(np.unique(np.concatenate(equal))) == n - n % count
  with pytest.raises(ValueError, match="process_index"):
    shard_indices(10, 2, 2)


def test_process_shards_read_disjoint_images(dataset):
  cfg = _cfg(dataset, preprocess="resize")
  whole = np.concatenate([b["input"] for b in eval_dataset(
      cfg, make_split(cfg, "train", equal_shards=False), batch_size=1)])
  parts = []
  for index in range(2):
    split = make_split(cfg, "train", process_index=index, process_count=2, equal_shards=False)
    parts.append(np.concatenate([b["input"] for b in eval_dataset(cfg, split, batch_size=1)]))
  assert len(parts[0]) == 3 and len(parts[1]) == 2
  np.testing.assert_array_equal(np.concatenate(parts)[[0, 3, 1, 4, 2]], whole)
  # Training shards hold the same number of images, so every process runs the same steps.
  train = [make_split(cfg, "train", process_index=i, process_count=2) for i in range(2)]
  assert [s.num_examples for s in train] == [2, 2]
  assert not set(train[0].image_indices) & set(train[1].image_indices)


def test_direction_swaps_input_and_target(dataset):
  a_cfg = _cfg(dataset, preprocess="resize")
  b_cfg = _cfg(dataset, preprocess="resize", direction="satellite_to_map")
  a = next(iter(eval_dataset(a_cfg, make_split(a_cfg, "val"), batch_size=1)))
  b = next(iter(eval_dataset(b_cfg, make_split(b_cfg, "val"), batch_size=1)))
  np.testing.assert_array_equal(a["input"], b["target"])
  np.testing.assert_array_equal(a["target"], b["input"])


def test_bad_inputs_raise_named_errors(tmp_path, dataset):
  with pytest.raises(DataError, match="does not exist"):
    make_split(_cfg(tmp_path / "missing"), "train")
  with pytest.raises(ConfigError, match="data.preprocess='crop'"):
    _cfg(dataset, preprocess="crop")
  with pytest.raises(ConfigError, match="data.load_size=16"):
    _cfg(dataset, load_size=16)
  cfg = _cfg(dataset)
  with pytest.raises(ValueError, match="batch_size=100"):
    train_dataset(cfg, make_split(cfg, "val"), batch_size=100, seed=0)


def test_mixed_sizes_in_patches_mode(tmp_path):
  """Each image gives its own cover of patches: 80 px halves 3 x 3, a 40 px half 2 x 2."""
  root = make_dataset(tmp_path, {"train": 2}, height=80)
  make_dataset(tmp_path / "small", {"train": 1}, height=40)
  (tmp_path / "small" / "train" / "1.jpg").rename(root / "train" / "3.jpg")
  cfg = _cfg(root, jitter=False, val_fraction=0.0)  # no val/: all pairs train
  split = make_split(cfg, "train")
  assert split.num_examples == 9 + 9 + 4
  assert split.regions[-4:].tolist() == [[2, 0, 0], [2, 0, 8], [2, 8, 0], [2, 8, 8]]
  batches = list(eval_dataset(cfg, split, batch_size=1))
  assert len(batches) == 22 and batches[-1]["input"].shape == (1, 32, 32, 3)


def test_multi_process_shards_of_mixed_sizes_take_equal_steps(tmp_path):
  root = make_dataset(tmp_path, {"train": 3}, height=80)
  make_dataset(tmp_path / "small", {"train": 1}, height=40)
  (tmp_path / "small" / "train" / "1.jpg").rename(root / "train" / "4.jpg")
  cfg = _cfg(root, val_fraction=0.0)
  counts = [make_split(cfg, "train", process_index=p, process_count=2).num_examples
            for p in range(2)]
  assert counts == [4 + 9, 4 + 9]  # process 1 has 9 + 4 regions; process 0 keeps as many


def test_real_maps_pipeline(real_maps):
  cfg = DataConfig(data_dir=str(real_maps), verify_images=False)
  split = make_split(cfg, "val")
  assert split.num_examples == 100 * 9
  batch = next(make_iterator(cfg, train_dataset(cfg, split, batch_size=2, seed=0)))
  assert batch["input"].shape == (2, 256, 256, 3)
  assert -1 <= batch["target"].min() and batch["target"].max() <= 1
  seed_cfg = DataConfig(data_dir=str(real_maps), patch_layout="grid", verify_images=False)
  assert make_split(seed_cfg, "val").num_examples == 100 * 4


def test_tfds_source_feeds_the_same_batches(dataset, tmp_path):
  from p2p.data.tfds_maps import prepare
  prepare(dataset, tmp_path / "tfds")
  folder = _cfg(dataset)
  tfds_cfg = _cfg(dataset, source="tfds", tfds_data_dir=str(tmp_path / "tfds"))
  run = lambda cfg: _take(make_iterator(cfg, train_dataset(cfg, make_split(cfg, "train"),
                                                           batch_size=2, seed=0)), 4)
  _assert_batches_equal(run(folder), run(tfds_cfg))
