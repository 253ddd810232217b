"""Transforms: patch layouts and coverage, aligned jitter and flip, value range."""

import numpy as np
import pytest

from p2p.data import DataError
from p2p.data.transforms import (Jitter, Resize, aligned_jitter, patch_boxes, random_crop, rescale,
                                 tile_starts)


def _coverage(half, size, layout, stride=0):
  covered = np.zeros((half, half), bool)
  for top, left in patch_boxes(half, size, layout, stride):
    covered[top:top + size, left:left + size] = True
  return covered.mean()


def test_seed_grid_layout_leaves_27_percent_unused():
  assert tile_starts(600, 256, "grid") == [0, 256]
  assert len(patch_boxes(600, 256, "grid")) == 4
  assert _coverage(600, 256, "grid") == pytest.approx(512**2 / 600**2)  # 72.8%


def test_cover_layout_reaches_every_pixel():
  assert tile_starts(600, 256, "cover") == [0, 172, 344]
  assert len(patch_boxes(600, 256, "cover")) == 9
  assert _coverage(600, 256, "cover") == 1.0
  assert tile_starts(600, 256, "cover", stride=128) == [0, 128, 256, 344]
  assert _coverage(600, 256, "cover", 128) == 1.0
  assert tile_starts(256, 256, "cover") == [0]


def test_patch_larger_than_half():
  with pytest.raises(DataError, match="patch_size=300"):
    tile_starts(256, 300)


def test_rescale_range():
  x = np.array([0, 127, 255], np.uint8)
  np.testing.assert_allclose(rescale(x), [-1.0, 127 / 127.5 - 1, 1.0])
  assert rescale(x).dtype == np.float32


def _unique_image(size=64, seed=0):
  """Every pixel distinct enough that any shift or flip is detectable."""
  return np.random.default_rng(seed).integers(0, 256, (size, size, 3), np.uint8)


def test_jitter_crops_and_flips_input_and_target_identically():
  image = _unique_image()
  flips = 0
  for seed in range(20):
    rng = np.random.default_rng(seed)
    inp, tgt = aligned_jitter(image, image.copy(), rng, load_size=72, crop_size=64, flip=True)
    assert inp.shape == (64, 64, 3)
    np.testing.assert_array_equal(inp, tgt)
    flips += not np.array_equal(inp, aligned_jitter(image, image, np.random.default_rng(seed),
                                                    load_size=72, crop_size=64, flip=False)[0])
  assert 3 < flips < 17  # flips happen, about half the time


def test_independent_crops_would_be_detected():
  # The seed cropped input and target separately; that misalignment shows up as a difference.
  image = _unique_image()
  a, _ = aligned_jitter(image, image, np.random.default_rng(1), load_size=72, crop_size=64,
                        flip=False)
  b, _ = aligned_jitter(image, image, np.random.default_rng(2), load_size=72, crop_size=64,
                        flip=False)
  assert not np.array_equal(a, b)


def test_jitter_transform_and_eval_resize():
  image = _unique_image(48)
  element = {"input": image, "target": 255 - image}
  out = Jitter(load_size=72, crop_size=64, flip=True).random_map(element,
                                                                 np.random.default_rng(0))
  assert out["input"].shape == (64, 64, 3) and out["input"].dtype == np.float32
  assert -1.0 <= out["input"].min() and out["input"].max() <= 1.0
  # 255 - x commutes with bicubic resize up to rounding: alignment holds to one level.
  np.testing.assert_allclose(out["input"], -out["target"], atol=2 / 127.5 + 1e-6)
  evaluated = Resize(64).map(element)
  again = Resize(64).map(element)
  np.testing.assert_array_equal(evaluated["input"], again["input"])
  assert evaluated["input"].shape == (64, 64, 3)


def test_random_crops_are_aligned_native_windows_from_anywhere():
  image = _unique_image(80)
  tops, lefts = set(), set()
  for seed in range(200):
    inp, tgt = random_crop(image, 255 - image, np.random.default_rng(seed), 32)
    assert inp.shape == (32, 32, 3)
    np.testing.assert_array_equal(tgt, 255 - inp)  # the same window of both
    (top, left), = [(t, l) for t, l in np.argwhere((image == inp[0, 0]).all(-1))
                    if np.array_equal(image[t:t + 32, l:l + 32], inp)]
    tops.add(top)
    lefts.add(left)
  assert min(tops) == 0 and max(tops) == 48 and len(tops) > 30  # every offset, edges included
  assert min(lefts) == 0 and max(lefts) == 48 and len(lefts) > 30
