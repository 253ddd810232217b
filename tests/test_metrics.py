"""Metrics: SSIM/PSNR against scikit-image, hand-computed values, and the seed's mean-colour row."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from p2p.data.images import to_uint8
from p2p.eval import metrics

SHAPE = (2, 24, 20, 3)  # non-square on purpose


def _random_pair(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
  rng = np.random.default_rng(seed)
  real = rng.uniform(-1, 1, SHAPE).astype(np.float32)
  fake = np.clip(real + rng.normal(0, 0.3, SHAPE), -1, 1).astype(np.float32)
  return fake, real


def _skimage_ssim(a: np.ndarray, b: np.ndarray, data_range: float) -> float:
  return structural_similarity(a, b, gaussian_weights=True, sigma=1.5,
                               use_sample_covariance=False, data_range=data_range,
                               channel_axis=-1)


def test_seed_ssim_and_psnr_match_skimage():
  fake, real = _random_pair()
  want_ssim = [_skimage_ssim(f, r, 2.0) for f, r in zip(fake, real)]
  want_psnr = [peak_signal_noise_ratio(r, f, data_range=2.0) for f, r in zip(fake, real)]
  np.testing.assert_allclose(metrics.seed_ssim(fake, real), want_ssim, atol=1e-5)
  np.testing.assert_allclose(metrics.seed_psnr(fake, real), want_psnr, atol=1e-4)


def test_standard_ssim_and_psnr_match_skimage_on_uint8():
  fake, real = _random_pair(1)
  fake8, real8 = to_uint8(fake), to_uint8(real)
  want_ssim = [_skimage_ssim(f, r, 255) for f, r in zip(fake8, real8)]
  want_psnr = [peak_signal_noise_ratio(r, f, data_range=255) for f, r in zip(fake8, real8)]
  np.testing.assert_allclose(metrics.ssim(fake, real), want_ssim, atol=1e-5)
  np.testing.assert_allclose(metrics.psnr_8bit(fake, real), want_psnr, atol=1e-4)
  want_l1 = np.abs(fake8.astype(float) - real8).mean(axis=(1, 2, 3))
  np.testing.assert_allclose(metrics.l1_8bit(fake, real), want_l1, atol=1e-4)


def test_seed_and_standard_ssim_differ():
  """SSIM is not shift-invariant: [-1, 1] with max 2 is not [0, 1] with max 1."""
  fake, real = _random_pair()
  assert np.abs(metrics.seed_ssim(fake, real) - metrics.ssim(fake, real)).max() > 1e-3


def test_identical_images():
  _, real = _random_pair()
  values = metrics.compute_metrics(real, real)
  for name in ("seed/l1", "seed/hp_l1", "l1_8bit", "hp_l1"):
    np.testing.assert_allclose(values[name], 0.0, atol=1e-6)  # seed/hp_l1: float rounding
  for name in ("seed/ssim", "ssim"):
    np.testing.assert_allclose(values[name], 1.0, atol=1e-6)
  for name in ("seed/psnr", "psnr_8bit"):
    assert np.all(np.isposinf(values[name]))


def test_constant_offset():
  rng = np.random.default_rng(2)
  levels = rng.integers(0, 192, SHAPE)  # real on the 8-bit grid, so +64 levels stays exact
  real = (levels / 127.5 - 1).astype(np.float32)
  fake = ((levels + 64) / 127.5 - 1).astype(np.float32)
  # atol: a float32 mean of 1,440 rounded differences; its error depends on the sum order
  np.testing.assert_allclose(metrics.seed_l1(fake, real), 64 / 127.5, atol=1e-5)
  np.testing.assert_allclose(metrics.seed_psnr(fake, real), 10 * np.log10(4 / (64 / 127.5) ** 2),
                             atol=1e-4)
  np.testing.assert_allclose(metrics.l1_8bit(fake, real), 64.0, atol=1e-4)
  np.testing.assert_allclose(metrics.psnr_8bit(fake, real), 20 * np.log10(255 / 64), atol=1e-4)
  # An offset has no high frequencies: the standard (unnormalised, VALID) HP-L1 is exactly 0.
  np.testing.assert_allclose(metrics.hp_l1(fake, real), 0.0, atol=1e-4)
  offset = np.full(SHAPE, 0.5, np.float32)
  np.testing.assert_allclose(metrics.seed_l1(offset, offset - 0.5), 0.5, atol=1e-6)
  np.testing.assert_allclose(metrics.seed_psnr(offset, offset - 0.5), 10 * np.log10(4 / 0.25),
                             atol=1e-4)


def _spike(size: int = 12, at: int = 5, value: float = 1.0) -> np.ndarray:
  """A (1, size, size, 3) black image (-1) with one pixel of `value` in all channels."""
  image = np.full((1, size, size, 3), -1.0, np.float32)
  image[0, at, at] = value
  return image


def test_seed_hp_l1_by_hand():
  """Constant fake 0: its Laplacian is 0 (even zero-padded), so HP-L1 = mean(|lap(real)|)/max."""
  real = _spike()
  fake = np.zeros_like(real)
  # RGB sum: background -3, spike +3. 8-neighbour Laplacian: spike 8*(-3) - 8*3 = -48 (the
  # max), its 8 neighbours 7*(-3) + 3 + 24 = 6, other interior pixels 0. Zero padding: the 40
  # non-corner border pixels have 5 neighbours in the image, 5*(-3) + 24 = 9; corners 3*(-3) + 24.
  total = 48 + 8 * 6 + 40 * 9 + 4 * 15
  np.testing.assert_allclose(metrics.seed_hp_l1(fake, real), total / 48 / 144, rtol=1e-5)
  np.testing.assert_allclose(metrics.seed_hp_l1(real, fake), total / 48 / 144, rtol=1e-5)
  # VALID: the 10x10 interior holds the spike and its neighbours only.
  np.testing.assert_allclose(metrics.seed_hp_l1(fake, real, padding="VALID"), 96 / 48 / 100,
                             rtol=1e-5)
  # 4-neighbour kernel, VALID: spike -24, its 4 edge neighbours 6 -> (24 + 4*6) / 24 / 100.
  np.testing.assert_allclose(metrics.seed_hp_l1(fake, real, kernel="4", padding="VALID"),
                             48 / 24 / 100, rtol=1e-5)


def test_seed_hp_l1_normalises_over_the_group():
  """A half-height spike (RGB sum 0: Laplacian -24, neighbours 3) shares the group's max of 48."""
  real = np.concatenate([_spike(), _spike(value=0.0)])
  fake = np.zeros_like(real)
  alone = metrics.seed_hp_l1(fake, real, group=1, padding="VALID")
  together = metrics.seed_hp_l1(fake, real, group=2, padding="VALID")
  np.testing.assert_allclose(alone, [0.02, 48 / 24 / 100], rtol=1e-5)
  np.testing.assert_allclose(together, [0.02, 48 / 48 / 100], rtol=1e-5)
  np.testing.assert_allclose(metrics.seed_hp_l1(fake, real, padding="VALID"), together)
  with pytest.raises(ValueError, match="group=3 must divide"):
    metrics.seed_hp_l1(fake, real, group=3)


def test_standard_hp_l1_by_hand():
  """A one-channel white spike on black: Laplacian -8*255 and 8 neighbours 255, over 10x10x3."""
  real = _spike()
  real[0, 5, 5, 1:] = -1.0
  fake = np.full_like(real, -1.0)
  np.testing.assert_allclose(metrics.hp_l1(fake, real), 16 * 255 / 300, rtol=1e-5)
  # The same pair placed beside a brighter pair: batch-independent, unlike the seed's.
  pair = np.concatenate([real, _spike()])
  np.testing.assert_allclose(metrics.hp_l1(np.full_like(pair, -1.0), pair)[0], 16 * 255 / 300,
                             rtol=1e-5)


def test_compute_metrics_names_shapes_dtypes():
  fake, real = _random_pair()
  values = metrics.compute_metrics(fake, real, hp_group=1)
  assert tuple(values) == metrics.METRIC_NAMES
  for name, v in values.items():
    assert v.shape == (SHAPE[0],) and v.dtype == np.float64, name
    assert np.all(np.isfinite(v)), name
  np.testing.assert_allclose(values["seed/hp_l1"], metrics.seed_hp_l1(fake, real, group=1))


def test_chunking_does_not_change_values(monkeypatch):
  fake, real = _random_pair()
  whole = metrics.compute_metrics(fake, real, hp_group=1)
  monkeypatch.setattr(metrics, "CHUNK_IMAGES", 1)
  chunked = metrics.compute_metrics(fake, real, hp_group=1)
  for name in metrics.METRIC_NAMES:
    np.testing.assert_allclose(chunked[name], whole[name], rtol=1e-6, err_msg=name)


def test_user_errors():
  fake, real = _random_pair()
  with pytest.raises(ValueError, match="same shape"):
    metrics.seed_l1(fake, real[:1])
  with pytest.raises(ValueError, match=r"in \[-1, 1\]"):
    metrics.seed_l1(fake, (real + 1) * 127.5)
  with pytest.raises(ValueError, match="at least 11x11"):
    metrics.ssim(fake[:, :8, :8], real[:, :8, :8])


def test_summarize():
  s = metrics.summarize(np.array([1.0, 2.0, 3.0, 4.0]))
  assert s == pytest.approx({"mean": 2.5, "min": 1.0, "max": 4.0, "std": np.sqrt(1.25), "n": 4})
  assert metrics.summarize(np.zeros((0,)))["n"] == 0


# The seed's published row for a constant image of the training photos' mean colour, scored on
# the maps val split with the 4-tile grid of 256x256 patches.
PUBLISHED_MEAN_COLOUR = {"seed/l1": 0.272, "seed/psnr": 15.24, "seed/ssim": 0.235,
                         "seed/hp_l1": 0.083}


@pytest.mark.slow
def test_mean_colour_baseline_near_published(real_maps):
  """Subset of the seed's mean-colour row: 10 val images, mean colour of 50 train photos.

  The tolerance is 3 standard errors of the 10-image mean (per-image std / sqrt(10), from the
  values themselves): the subset is a sample of the split, so only a gross change of definition
  (a wrong max_val, units or normalisation batch) moves it further.
  """
  from p2p.data.folder import list_images, load_pair
  from p2p.data.layouts import PairFiles
  from p2p.data.transforms import patch_boxes
  photos = [load_pair(PairFiles(p.name, str(p)))[0] for p in list_images(real_maps, "train")[:50]]
  colour = np.mean([p.reshape(-1, 3).mean(0) for p in photos], axis=0) / 127.5 - 1
  halves = [load_pair(PairFiles(p.name, str(p)))[0] for p in list_images(real_maps, "val")[:10]]
  real = np.stack([h[t:t + 256, l:l + 256] for h in halves
                   for t, l in patch_boxes(600, 256, "grid")]).astype(np.float32) / 127.5 - 1
  fake = np.broadcast_to(colour.astype(np.float32), real.shape)
  values = metrics.compute_metrics(fake, real, hp_group=4)
  for name, published in PUBLISHED_MEAN_COLOUR.items():
    per_image = values[name].reshape(10, 4).mean(1)
    stderr = per_image.std(ddof=1) / np.sqrt(10)
    assert abs(per_image.mean() - published) <= 3 * stderr, (name, per_image.mean(), stderr)
