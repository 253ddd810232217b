"""FID/KID: the metrics, preprocessing and the Inception network (weights: test_fid_weights)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
from conftest import REAL_ELEMENTS, REAL_TENSORS, smooth_images

from p2p.eval import fid
from p2p.eval.fid import inception


@pytest.fixture(scope="module")
def random_params() -> dict:
  return fid.random_fid_params(0)


@pytest.fixture(scope="module")
def images() -> np.ndarray:
  return smooth_images(6)


@pytest.fixture(scope="module")
def random_feats(random_params: dict, images: np.ndarray) -> np.ndarray:
  return fid.fid_features(random_params, images, batch_size=2)


# ------------------------------------------------------------------------- network plumbing


def test_random_params_have_the_real_tree(random_params: dict):
  leaves = [np.asarray(x) for x in __import__("jax").tree_util.tree_leaves(random_params)]
  assert len(leaves) == REAL_TENSORS
  assert sum(x.size for x in leaves) == REAL_ELEMENTS
  assert random_params["conv"]["kernel"].shape == (3, 3, 3, 32)
  assert random_params["mixed_10"]["tower_2_conv"]["kernel"].shape == (1, 1, 2048, 192)


@pytest.mark.slow
def test_features_shape_dtype_determinism(random_params: dict, images: np.ndarray,
                                          random_feats: np.ndarray):
  assert random_feats.shape == (6, inception.FEATURES)
  assert random_feats.dtype == np.float32
  assert np.isfinite(random_feats).all() and (random_feats >= 0).all()
  assert random_feats.std(axis=0).max() > 0  # images differ, so features do
  again = fid.fid_features(random_params, images, batch_size=2)
  np.testing.assert_array_equal(again, random_feats)
  # A ragged last batch is padded, then dropped: batch 4 over 6 images gives the same rows.
  ragged = fid.fid_features(random_params, images[:5], batch_size=2)
  np.testing.assert_allclose(ragged, random_feats[:5], rtol=1e-5, atol=1e-6)


def test_float_input_matches_uint8(random_params: dict, images: np.ndarray,
                                   random_feats: np.ndarray):
  as_float = images[:2].astype(np.float32) / 127.5 - 1.0
  feats = fid.fid_features(random_params, as_float, batch_size=2)
  np.testing.assert_allclose(feats, random_feats[:2], rtol=1e-4, atol=1e-5)


def test_bad_images_raise_clear_errors(random_params: dict, images: np.ndarray):
  with pytest.raises(ValueError, match=r"N x H x W x 3"):
    fid.fid_features(random_params, images[..., 0])
  with pytest.raises(ValueError, match=r"\[-1, 1\].*uint8"):
    fid.fid_features(random_params, images.astype(np.float32))
  with pytest.raises(ValueError, match="uint8 0..255 or float"):
    fid.fid_features(random_params, images.astype(np.int32))


@pytest.mark.slow
def test_fid_and_kid_grow_with_a_shift(random_params: dict, images: np.ndarray,
                                       random_feats: np.ndarray):
  brighter = np.clip(images.astype(np.int32) + 80, 0, 255).astype(np.uint8)
  shifted = fid.fid_features(random_params, brighter, batch_size=2)
  # The first 256 dims keep it fast: a 2048-d matrix root costs 4-50 s on 2 shared cores.
  same = fid.frechet_distance(random_feats[:, :256], random_feats[:, :256])
  moved = fid.frechet_distance(random_feats[:, :256], shifted[:, :256])
  assert abs(same) < 1e-3 * moved
  kid_same, _ = fid.kernel_inception_distance(random_feats, random_feats, subsets=5)
  kid_moved, _ = fid.kernel_inception_distance(random_feats, shifted, subsets=5)
  assert kid_moved > 0 and kid_moved > kid_same + 0.01


# ------------------------------------------------------------------------- preprocessing


def test_resize_matrix_is_tf1_bilinear():
  # 2 -> 4: sources 0, 0.5, 1, 1.5 (clamped to 1), as TF1 resize_bilinear(align_corners=False).
  np.testing.assert_allclose(inception.resize_matrix(2, 4),
                             [[1, 0], [0.5, 0.5], [0, 1], [0, 1]])
  # 4 -> 2: sources 0 and 2, no antialiasing.
  np.testing.assert_allclose(inception.resize_matrix(4, 2), [[1, 0, 0, 0], [0, 0, 1, 0]])
  np.testing.assert_allclose(inception.resize_matrix(256, 299).sum(1), 1.0, rtol=1e-6)


def test_preprocess_range_and_identity_at_299():
  x = np.zeros((1, 299, 299, 3), np.uint8)
  x[0, 0, 0] = 255
  y = np.asarray(inception.preprocess(x))
  assert y.shape == (1, 299, 299, 3)
  assert y[0, 0, 0, 0] == pytest.approx(0.9921875) and y[0, 1, 1, 0] == pytest.approx(-1.0)
  small = np.asarray(inception.preprocess(np.full((1, 16, 16, 3), 128, np.uint8)))
  assert small.shape == (1, 299, 299, 3)
  np.testing.assert_allclose(small, 128 / 255 * 1.9921875 - 1, atol=1e-6)


# ------------------------------------------------------------------------- metrics


def sqrt_psd(m: np.ndarray) -> np.ndarray:
  vals, vecs = np.linalg.eigh(m)
  return (vecs * np.sqrt(np.clip(vals, 0, None))) @ vecs.T


def test_frechet_distance_matches_closed_form():
  rng = np.random.default_rng(1)
  a = rng.normal(0, 1, (400, 8)) * np.linspace(0.5, 2, 8)
  b = rng.normal(0.3, 1, (300, 8)) @ rng.normal(0, 0.5, (8, 8))
  assert fid.frechet_distance(a, a) == pytest.approx(0, abs=1e-8)
  np.testing.assert_allclose(fid.frechet_distance(a, a + 0.5), 8 * 0.25, rtol=1e-6)
  sa, sb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
  root = sqrt_psd(sa)
  expected = (np.sum((a.mean(0) - b.mean(0)) ** 2) + np.trace(sa) + np.trace(sb)
              - 2 * np.trace(sqrt_psd(root @ sb @ root)))
  np.testing.assert_allclose(fid.frechet_distance(a, b), expected, rtol=1e-6)


def test_frechet_distance_with_fewer_samples_than_dims():
  rng = np.random.default_rng(2)
  a = rng.normal(0, 1, (5, 32))
  for method in ("sqrtm", "eigvals", "svd"):
    value = fid.frechet_distance(a, a + 1.0, method=method)
    assert np.isfinite(value) and value == pytest.approx(32.0, rel=1e-3)


def test_frechet_methods_agree():
  rng = np.random.default_rng(6)
  a = rng.normal(0, 1, (300, 64))
  b = rng.normal(0.1, 1, (200, 64)) @ rng.normal(0, 0.2, (64, 64))
  np.testing.assert_allclose(fid.frechet_distance(a, b, method="eigvals"),
                             fid.frechet_distance(a, b), rtol=1e-8)
  few_a, few_b = a[:40], b[:30]  # fewer samples than dimensions: the evaluation case
  for x, y in ((a, b), (few_a, few_b)):
    np.testing.assert_allclose(fid.frechet_distance(x, y, method="svd"),
                               fid.frechet_distance(x, y, method="eigvals"), rtol=1e-7)
  with pytest.raises(ValueError, match="'sqrtm', 'eigvals' or 'svd'"):
    fid.frechet_distance(a, b, method="cholesky")


def brute_force_mmd(x: np.ndarray, y: np.ndarray) -> float:
  m, d = x.shape
  k = lambda u, v: (u @ v / d + 1) ** 3  # noqa: E731
  xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
  yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
  xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
  return xx + yy - 2 * xy


def test_kid_is_unbiased_polynomial_mmd():
  rng = np.random.default_rng(3)
  x, y = rng.normal(0, 1, (6, 4)), rng.normal(0.5, 1, (6, 4))
  mean, std = fid.kernel_inception_distance(x, y, subsets=3, subset_size=6)
  assert mean == pytest.approx(brute_force_mmd(x, y), rel=1e-10) and std == pytest.approx(0)


def test_kid_near_zero_for_one_distribution_and_caps_subset_size():
  rng = np.random.default_rng(4)
  a, b = rng.normal(0, 1, (400, 16)), rng.normal(0, 1, (400, 16))
  same, same_std = fid.kernel_inception_distance(a, b, subsets=50, subset_size=100)
  moved, _ = fid.kernel_inception_distance(a, b + 0.5, subsets=50, subset_size=100)
  assert abs(same) < 2 * same_std / np.sqrt(50) + 1e-3  # within noise of 0 (unbiased)
  assert moved > 0.5
  capped, capped_std = fid.kernel_inception_distance(a[:100], b[:100], subsets=3)
  assert np.isfinite(capped) and capped_std == pytest.approx(0)  # one subset: all 100
  with pytest.raises(ValueError, match="at least 2"):
    fid.kernel_inception_distance(a[:1], b)


def test_sqrtm_available():
  # frechet_distance relies on scipy.linalg.sqrtm returning the root alone (SciPy >= 1.11).
  root = scipy.linalg.sqrtm(np.diag([4.0, 9.0]))
  np.testing.assert_allclose(np.real(root), np.diag([2.0, 3.0]))
