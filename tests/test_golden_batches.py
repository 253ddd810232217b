"""The maps layout's batches are pinned: the same seed gives the same bytes as before the
own-data reader (side-by-side PNG pairs, patches and resize, train and eval, resident)."""

import hashlib

import jax
import numpy as np
import pytest
from conftest import write_pair

from p2p.config import DataConfig
from p2p.data.pipeline import eval_dataset, make_iterator, make_split, train_dataset
from p2p.data.resident import ResidentIterator
from p2p.train import parallel

# sha256 of the first batches' float32 bytes, recorded on the reader before own-data layouts.
GOLDEN = {
    "patches/train":
        "581ec58650253221ac35562c3365e03ad46c207d78e455fdf7b11a9c345689f2",
    "patches/eval":
        "e2b6c849a585880bc56e9e51fa2a7df149b556ca996524bdac7f566d1d1118fb",
    "resize/train":
        "3a4501f9d828be6e95cb0d29c0aabb09b51431eb5bc31e068572609248a0f885",
    "resize/eval":
        "8dcef1eeb0ae40ec45e37f046e44c687e671c8e2ed281725a282125b7322ea47",
    "resident":
        "aa4081c2c60fdd95d3278763aee429f9a988c0dafba038e33efde0781a2178fe",
}


@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
  """Four 80x160 side-by-side PNG pairs per split, from a fixed generator."""
  root = tmp_path_factory.mktemp("golden")
  rng = np.random.default_rng(1234)
  for split in ("train", "val"):
    for i in range(1, 5):
      photo = rng.integers(0, 256, (80, 80, 3), dtype=np.uint8)
      map_ = rng.integers(0, 256, (80, 80, 3), dtype=np.uint8)
      write_pair(root / split / f"{i}.png", photo, map_)
  return root


def _digest(batches) -> str:
  h = hashlib.sha256()
  for batch in batches:
    for key in ("input", "target"):
      h.update(np.ascontiguousarray(np.asarray(batch[key], np.float32)).tobytes())
  return h.hexdigest()


def _cfg(root, preprocess):
  return DataConfig(data_dir=str(root), preprocess=preprocess, patch_size=32, image_size=32,
                    load_size=36, num_threads=1, prefetch_buffer_size=1)


@pytest.mark.parametrize("preprocess", ["patches", "resize"])
def test_train_and_eval_batches_unchanged(pairs, preprocess):
  cfg = _cfg(pairs, preprocess)
  it = make_iterator(cfg, train_dataset(cfg, make_split(cfg, "train"), batch_size=2, seed=7))
  train = [next(it) for _ in range(5)]
  evals = list(eval_dataset(cfg, make_split(cfg, "val", equal_shards=False), batch_size=3))
  got = {f"{preprocess}/train": _digest(train), f"{preprocess}/eval": _digest(evals)}
  assert got == {k: GOLDEN[k] for k in got}


def test_resident_batches_unchanged(pairs):
  cfg = _cfg(pairs, "patches")
  mesh = parallel.make_mesh(jax.local_devices()[:1])
  it = ResidentIterator(cfg, make_split(cfg, "train"), batch_size=2, seed=7, mesh=mesh)
  got = _digest([it.fetch(1) for _ in range(3)] + [jax.tree.map(lambda x: x[1], it.fetch(2))])
  assert got == GOLDEN["resident"]
