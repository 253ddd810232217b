"""Inference: p2p.load / p2p.sample / p2p.translate_image on a tiny trained run."""

from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

import p2p
from p2p.data import synthetic
from p2p.data.images import load_image
from p2p.data.transforms import tile_starts
from p2p.infer.sample import Generator
from p2p.models import UNetGenerator
from p2p.train.checkpoint import CheckpointError


@pytest.fixture(scope="module")
def run(tiny_run) -> Path:
  return tiny_run


@pytest.fixture(scope="module")
def gen(run) -> Generator:
  return p2p.load(run)


def maps_batch(n: int, size: int = 32, seed: int = 0) -> np.ndarray:
  return np.stack([synthetic.render_pair([seed, i], size)[:, size:] for i in range(n)])


def test_load_newest_or_given_step(run, gen):
  assert (gen.step, gen.image_size, gen.data.direction) == (8, 32, "BtoA")
  assert (gen.channels, gen.ranges, gen.output_dtype) == ((3, 3), ((0, 255), (0, 255)), "uint8")
  assert p2p.load(run, step=4).step == 4
  with pytest.raises(CheckpointError, match=r"no checkpoint of step 5.*\[4, 8\]"):
    p2p.load(run, step=5)


def test_load_without_checkpoint_says_train_first(tmp_path):
  with pytest.raises(CheckpointError, match="holds no checkpoint; train first"):
    p2p.load(tmp_path)


def test_sample_keeps_the_dtype_convention(gen):
  maps = maps_batch(3)
  out = p2p.sample(gen, maps)
  assert out.shape == (3, 32, 32, 3) and out.dtype == np.uint8
  floats = p2p.sample(gen, maps.astype(np.float32) / 127.5 - 1)
  assert floats.dtype == np.float32 and floats.min() >= -1 and floats.max() <= 1
  np.testing.assert_allclose(floats, out.astype(np.float32) / 127.5 - 1, atol=1 / 127.5 + 1e-6)


def test_sample_is_deterministic_per_key_and_independent_of_batching(gen):
  maps = maps_batch(5).astype(np.float32) / 127.5 - 1
  key = jax.random.PRNGKey(3)
  a = p2p.sample(gen, maps, rng=key)
  np.testing.assert_array_equal(a, p2p.sample(gen, maps, rng=key))
  # Other batch shapes compile other kernels: equal up to float rounding.
  np.testing.assert_allclose(a, p2p.sample(gen, maps, rng=key, chunk=2), atol=1e-5)
  np.testing.assert_allclose(a[:1], p2p.sample(gen, maps[:1], rng=key), atol=1e-5)


@pytest.mark.slow
def test_the_key_drives_dropout_in_batch_mode_only():
  module = UNetGenerator(ngf=8)  # at 64 px the U-Net has one dropout level
  variables = jax.jit(lambda k: module.init({"params": k}, jnp.zeros((1, 64, 64, 3)),
                                            train=False))(jax.random.key(0, impl="rbg"))
  gen = Generator(module, variables, 64)
  maps = maps_batch(2, 64)
  one, two = jax.random.PRNGKey(1), jax.random.PRNGKey(2)
  assert np.abs(p2p.sample(gen, maps, rng=one).astype(int)
                - p2p.sample(gen, maps, rng=two)).max() > 0
  np.testing.assert_array_equal(p2p.sample(gen, maps, rng=one, norm="running"),
                                p2p.sample(gen, maps, rng=two, norm="running"))
  # nodropout: the same per-image statistics as batch mode, the key no longer matters.
  no_drop = p2p.sample(gen, maps, rng=one, norm="nodropout")
  np.testing.assert_array_equal(no_drop, p2p.sample(gen, maps, rng=two, norm="nodropout"))
  assert np.abs(no_drop.astype(int) - p2p.sample(gen, maps, rng=one, norm="running")).max() > 0


def test_running_norm_is_eval_mode(gen):
  maps = maps_batch(2)
  a = p2p.sample(gen, maps, norm="running", rng=jax.random.PRNGKey(1))
  np.testing.assert_array_equal(a, p2p.sample(gen, maps, norm="running",
                                                   rng=jax.random.PRNGKey(2)))
  # One batched call (no vmap): each image's output is still its own.
  alone = np.concatenate([p2p.sample(gen, maps[i:i + 1], norm="running") for i in range(2)])
  assert np.abs(a.astype(int) - alone).max() <= 1
  with pytest.raises(ValueError, match="norm='eval'"):
    p2p.sample(gen, maps, norm="eval")


def test_sample_rejects_non_nhwc(gen):
  with pytest.raises(ValueError, match="NHWC"):
    p2p.sample(gen, maps_batch(1)[0])


def test_translate_equals_sample_when_no_tiling_is_needed(gen):
  image = maps_batch(1)[0]
  np.testing.assert_array_equal(p2p.translate_image(gen, image), p2p.sample(gen, image[None])[0])


@pytest.mark.parametrize("shape", [(20, 20), (32, 75), (90, 33), (1, 1)])
def test_translate_any_size(gen, shape):
  image = np.random.default_rng(0).integers(0, 256, shape + (3,), dtype=np.uint8)
  out = p2p.translate_image(gen, image)
  assert out.shape == shape + (3,) and out.dtype == np.uint8


class TileMean(nn.Module):
  """A stand-in generator whose output shifts with each tile's mean, like per-tile statistics."""

  @nn.compact
  def __call__(self, x, train=False, dropout=False):
    gain = self.param("gain", nn.initializers.ones, ())
    return jnp.tanh(gain * (x - x.mean(axis=(1, 2), keepdims=True)))


def test_constant_model_gives_a_constant_image(gen):
  variables = jax.tree.map(np.asarray, gen.variables)
  variables["params"]["up_1"]["conv"]["kernel"] = np.zeros_like(
      variables["params"]["up_1"]["conv"]["kernel"])
  variables["params"]["up_1"]["conv"]["bias"] = np.array([0.5, -0.2, 0.1], np.float32)
  constant = Generator(gen.module, variables, gen.image_size)
  image = np.random.default_rng(1).integers(0, 256, (100, 70, 3), dtype=np.uint8)
  out = p2p.translate_image(constant, image)
  want = np.rint((np.tanh([0.5, -0.2, 0.1]) + 1) * 127.5).astype(np.uint8)
  assert (out == want).all()


def seam_and_centre_jumps(out: np.ndarray, size: int, overlap: int) -> tuple[float, float]:
  """Mean |pixel step| across the middle of each tile overlap, and across tile centres."""
  starts = tile_starts(out.shape[1], size, "cover", size - overlap)
  seams = sorted({s + size - overlap // 2 - 1 for s in starts[:-1]})
  centres = [s + size // 2 - 1 for s in starts]
  jump = np.abs(np.diff(out.astype(np.float32), axis=1)).mean(axis=(0, 2))
  return float(jump[seams].mean()), float(jump[centres].mean())


def test_seams_blend_away():
  gen = Generator(TileMean(), {"params": {"gain": jnp.ones(())}, "batch_stats": {}}, 32)
  ramp = np.linspace(0, 255, 150)
  image = np.repeat(((ramp[None, :] + ramp[:, None]) / 2)[..., None], 3, -1).astype(np.uint8)
  hard = seam_and_centre_jumps(p2p.translate_image(gen, image, overlap=0), 32, 0)
  assert hard[0] > 5 * hard[1]  # without blending the seams are plain to see
  seam, centre = seam_and_centre_jumps(p2p.translate_image(gen, image), 32, 16)
  assert seam <= centre


@pytest.mark.slow
def test_large_map_in_bounded_memory(gen):
  image = np.random.default_rng(2).integers(0, 256, (1200, 1200, 3), dtype=np.uint8)
  assert p2p.translate_image(gen, image).shape == (1200, 1200, 3)


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "P"])
def test_load_image_any_mode(tmp_path, mode):
  rgb = Image.fromarray(maps_batch(1)[0])
  image = rgb.convert(mode)
  path = tmp_path / f"map.{'jpg' if mode in ('RGB', 'L') else 'png'}"
  image.save(path)
  loaded = load_image(path)
  assert loaded.shape == (32, 32, 3) and loaded.dtype == np.uint8


def test_load_image_transparency_on_white(tmp_path):
  Image.new("RGBA", (8, 8), (10, 20, 30, 0)).save(tmp_path / "clear.png")
  assert (load_image(tmp_path / "clear.png") == 255).all()


def test_unreadable_image_is_named(tmp_path):
  (tmp_path / "bad.png").write_bytes(b"not an image")
  with pytest.raises(ValueError, match="bad.png is not a readable image"):
    load_image(tmp_path / "bad.png")
