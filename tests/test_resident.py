"""Resident data: the Grain path's pixels, aligned crops and flips on the device, exact resume."""

import numpy as np
import pytest
from conftest import make_dataset

from p2p.config import DataConfig
from p2p.data.pipeline import make_split, region_reader
from p2p.data.resident import ResidentIterator, epoch_order
from p2p.data.transforms import rescale, resize
from p2p.train import parallel


def _cfg(root, **kw):
  defaults = dict(data_dir=str(root), preprocess="patches", patch_size=32, image_size=32,
                  load_size=36, num_threads=2)
  return DataConfig(**{**defaults, **kw})


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
  """80 px halves: 3x3 cover patches of 32 per pair, 5 pairs -> 45 examples."""
  return make_dataset(tmp_path_factory.mktemp("maps"), {"train": 5, "val": 1}, height=80)


def _iterator(cfg, batch_size=3, seed=0):
  split = make_split(cfg, "train")
  return ResidentIterator(cfg, split, batch_size=batch_size, seed=seed,
                          mesh=parallel.make_mesh()), split


def test_without_jitter_batches_equal_the_grain_path_pixels(dataset):
  cfg = _cfg(dataset, jitter=False, flip=False)
  it, split = _iterator(cfg)
  read = region_reader(cfg, split)
  indices = it.indices(0, 2)
  batch = it.fetch(2)
  assert batch["input"].shape == (2, 3, 32, 32, 3)
  for k in range(2):
    for b in range(3):
      element = read.map(int(indices[k, b]))
      for key in ("input", "target"):
        want = rescale(resize(element[key], cfg.image_size))
        np.testing.assert_array_equal(np.asarray(batch[key][k, b]), want)


def _window(region, batch_image):
  """(top, left, flipped) of the crop of region that equals batch_image, or None."""
  size = batch_image.shape[0]
  for top in range(region.shape[0] - size + 1):
    for left in range(region.shape[1] - size + 1):
      crop = region[top:top + size, left:left + size]
      for flipped in (False, True):
        if np.array_equal(crop[:, ::-1] if flipped else crop, batch_image):
          return top, left, flipped
  return None


def _aligned_windows(it, read, steps, source):
  """Fetches `steps` single batches; the shared (top, left, flipped) window of each example.

  source(element) is the uint8 image pair the device crops from, as {'input', 'target'}.
  """
  seen = []
  for step in range(steps):
    indices = it.indices(step, 1)[0]
    batch = it.fetch(1)
    for b, index in enumerate(indices):
      region = source(read.map(int(index)))
      windows = [_window(rescale(region[key]), np.asarray(batch[key][b]))
                 for key in ("input", "target")]
      assert windows[0] is not None and windows[0] == windows[1]  # same crop, same flip
      seen.append(windows[0])
  return seen


def test_crops_and_flips_are_aligned_windows_of_the_resized_region(dataset):
  cfg = _cfg(dataset)
  it, split = _iterator(cfg, batch_size=5)
  seen = _aligned_windows(it, region_reader(cfg, split), 3,
                          lambda e: {k: resize(e[k], cfg.load_size) for k in e})
  assert len({(t, l) for t, l, _ in seen}) > 1 and {f for *_, f in seen} == {False, True}


def test_epochs_visit_every_example_once_in_a_fresh_order(dataset):
  it, _ = _iterator(_cfg(dataset), batch_size=4)  # 45 examples: 11 steps, 1 left out
  assert it.steps_per_epoch == 11
  epoch0 = it.indices(0, 11).ravel()
  assert len(set(epoch0.tolist())) == 44
  np.testing.assert_array_equal(epoch0, epoch_order(0, 0, 45)[:44])
  assert not np.array_equal(it.indices(11, 11).ravel(), epoch0)
  with pytest.raises(ValueError, match="cross an epoch end"):
    it.indices(10, 2)


def test_stacked_fetch_equals_single_fetches_and_state_resumes(dataset):
  cfg = _cfg(dataset)
  a, _ = _iterator(cfg)
  b, _ = _iterator(cfg)
  stacked = a.fetch(3)
  singles = [b.fetch(1) for _ in range(3)]
  for k in range(3):
    for key in ("input", "target"):
      np.testing.assert_array_equal(np.asarray(stacked[key][k]), np.asarray(singles[k][key]))
  c, _ = _iterator(cfg)
  c.set_state(a.get_state())
  assert c.step == 3
  for key in ("input", "target"):
    np.testing.assert_array_equal(np.asarray(c.fetch(1)[key]), np.asarray(a.fetch(1)[key]))
  c.set_state({"next_index": 7})
  assert c.step == 7
  with pytest.raises(ValueError, match="not a resident-data position"):
    c.set_state(b'{"iterations": 3}')


def test_uint16_bands_match_the_grain_path(tmp_path):
  """Any channels and bit depth: 1-band uint16 in, 4-band uint16 out, the host's values."""
  from p2p.data.io import write_image
  from p2p.data.pipeline import resolve
  from p2p.data.values import to_unit
  rng = np.random.default_rng(0)
  for i in range(3):
    a = rng.integers(0, 65536, (40, 40, 1), dtype=np.uint16)
    write_image(tmp_path / "train" / "A" / f"{i}.png", a)
    write_image(tmp_path / "train" / "B" / f"{i}.tif", np.concatenate([a] * 4, axis=-1))
  cfg, scan = resolve(_cfg(tmp_path, direction="AtoB", jitter=False, flip=False,
                           val_source="holdout", val_fraction=0.0))
  split = make_split(cfg, "train", scan=scan)
  it = ResidentIterator(cfg, split, batch_size=2, seed=0, mesh=parallel.make_mesh())
  read = region_reader(cfg, split)
  indices, batch = it.indices(0, 1)[0], it.fetch(1)
  assert batch["input"].shape == (2, 32, 32, 1) and batch["target"].shape == (2, 32, 32, 4)
  for b, index in enumerate(indices):
    element = read.map(int(index))
    for key in ("input", "target"):
      want = to_unit(resize(element[key], 32), (0, 65535))
      np.testing.assert_allclose(np.asarray(batch[key][b]), want, atol=1e-6)
