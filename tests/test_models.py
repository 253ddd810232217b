"""Generator, discriminators and the phase transposed conv: shapes, sizes, init, equivalence."""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from p2p.models import MultiScaleDiscriminator, PatchDiscriminator, UNetGenerator, min_input_size
from p2p.models.discriminator import coarsest_size, downsample
from p2p.models.layers import ConvTranspose
from p2p.ops import KernelOptions

NGF = 8


def rng(seed: int = 0) -> jax.Array:
  """An rbg key: jit(init) compiles several times faster than with threefry."""
  return jax.random.key(seed, impl="rbg")


def normal(*shape: int, seed: int = 0) -> jax.Array:
  """Host-side random data: a threefry draw would cost a compile per shape."""
  return jnp.asarray(np.random.default_rng(seed).standard_normal(shape, np.float32))


def images(size: int, channels: int = 3, batch: int = 2, seed: int = 0) -> jax.Array:
  return jnp.asarray(np.random.default_rng(seed).uniform(
      -1, 1, (batch, size, size, channels)).astype(np.float32))


def param_count(tree) -> int:
  return sum(int(np.prod(leaf.shape)) for leaf in jax.tree.leaves(tree))


def abstract_variables(model: nn.Module, size: int, channels: int):
  return jax.eval_shape(
      lambda k: model.init(k, jnp.zeros((1, size, size, channels)), train=False), rng())


def init(model: nn.Module, x: jax.Array):
  return jax.jit(functools.partial(model.init, train=False))(rng(), x)


def runner(model: nn.Module):
  """Jitted apply; train=True also returns the updated batch_stats."""
  @functools.partial(jax.jit, static_argnames=("train", "dropout"))
  def run(variables, x, key, train=False, dropout=None):
    mutable = ["batch_stats"] if train else False
    return model.apply(variables, x, train=train, dropout=dropout, rngs={"dropout": key},
                       mutable=mutable)
  return run


# --- phase transposed conv -----------------------------------------------------------------------

@pytest.mark.parametrize("bias,impl,matmul", [(True, "phase", 0), (False, "phase", 0),
                                              (True, "phase", 16), (True, "flax", 0)])
def test_conv_transpose_matches_flax(bias, impl, matmul):
  """Every kernel choice (phase, one GEMM, lax's) equals flax.linen.ConvTranspose: same params."""
  x = normal(2, 5, 6, 3, seed=1)
  phase = ConvTranspose(4, bias, kernels=KernelOptions(conv_transpose_impl=impl,
                                                       matmul_conv_max_size=matmul))
  stock = nn.ConvTranspose(4, (4, 4), strides=(2, 2), padding="SAME", use_bias=bias)
  variables = stock.init(rng(), x)
  assert (jax.tree.map(jnp.shape, phase.init(rng(), x))
          == jax.tree.map(jnp.shape, variables))
  variables = jax.tree.map(lambda p: normal(*p.shape, seed=2), variables)
  cotangent = normal(2, 10, 12, 4, seed=3)

  def loss(module, v, x):
    return jnp.sum(module.apply(v, x) * cotangent)

  y_phase, y_stock = jax.jit(phase.apply)(variables, x), jax.jit(stock.apply)(variables, x)
  assert y_phase.shape == (2, 10, 12, 4)
  np.testing.assert_allclose(y_phase, y_stock, atol=1e-5)
  grads_phase = jax.jit(jax.grad(functools.partial(loss, phase), argnums=(0, 1)))(variables, x)
  grads_stock = jax.jit(jax.grad(functools.partial(loss, stock), argnums=(0, 1)))(variables, x)
  for g_phase, g_stock in zip(jax.tree.leaves(grads_phase), jax.tree.leaves(grads_stock)):
    np.testing.assert_allclose(g_phase, g_stock, atol=1e-4)


def test_phase_conv_transpose_computes_in_dtype_with_float32_params():
  layer = ConvTranspose(4, dtype=jnp.bfloat16)
  variables = layer.init(rng(), jnp.zeros((1, 4, 4, 3)))
  assert variables["params"]["kernel"].dtype == jnp.float32
  assert layer.apply(variables, jnp.ones((1, 4, 4, 3))).dtype == jnp.bfloat16


def test_unknown_conv_transpose_impl_is_rejected():
  with pytest.raises(ValueError, match="conv_transpose_impl"):
    KernelOptions(conv_transpose_impl="cudnn")


# --- generator -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def g5():
  """num_downs=5 U-Net: the default at 32 px, explicit at 64 px; same params for both."""
  model = UNetGenerator(ngf=NGF, num_downs=5)
  return model, init(model, images(32, batch=1)), runner(model)


@pytest.fixture(scope="module")
def g6():
  """The default U-Net at 64 px (6 levels, dropout on level 5)."""
  model = UNetGenerator(ngf=NGF)
  return model, init(model, images(64, batch=1)), runner(model)


@pytest.mark.parametrize("size", [32, 64])
def test_generator_output_shape_and_range(g5, g6, size):
  model, variables, run = g5 if size == 32 else g6
  y = run(variables, images(size), rng())
  assert y.shape == (2, size, size, 3) and y.dtype == jnp.float32
  assert float(jnp.abs(y).max()) <= 1.0 and float(jnp.abs(y).max()) > 0


def test_generator_with_explicit_num_downs(g5):
  model, variables, run = g5
  y = run(variables, images(64), rng())
  assert y.shape == (2, 64, 64, 3)
  shapes = jax.eval_shape(lambda: UNetGenerator(ngf=NGF, num_downs=5).apply(
      variables, jnp.zeros((1, 96, 128, 3)), train=False))
  assert shapes.shape == (1, 96, 128, 3)


@pytest.mark.parametrize("size", [16, 48])
def test_generator_rejects_bad_sizes(size):
  with pytest.raises(ValueError, match=f"{size}x{size}"):
    abstract_variables(UNetGenerator(ngf=NGF), size, 3)


def test_generator_rejects_size_not_divisible_by_num_downs():
  with pytest.raises(ValueError, match="divisible by 64"):
    abstract_variables(UNetGenerator(ngf=NGF, num_downs=6), 96, 3)


def test_generator_has_pix2pix_parameter_count():
  variables = abstract_variables(UNetGenerator(), 256, 3)
  assert param_count(variables["params"]) == 54_413_955
  assert sorted(variables["params"]) == sorted(
      [f"down_{i}" for i in range(1, 9)] + [f"up_{i}" for i in range(1, 9)])


def test_generator_innermost_and_outermost_layers(g6):
  params, stats = g6[1]["params"], g6[1]["batch_stats"]
  assert list(params["down_6"]) == ["conv"] and "down_6" not in stats
  assert list(params["down_1"]) == ["conv"] and "bias" not in params["down_1"]["conv"]
  assert "bias" in params["up_1"]["conv"] and "norm" not in params["up_1"]
  assert params["up_1"]["conv"]["kernel"].shape == (4, 4, 2 * NGF, 3)
  assert params["up_6"]["conv"]["kernel"].shape == (4, 4, 8 * NGF, 8 * NGF)
  assert params["up_5"]["conv"]["kernel"].shape == (4, 4, 16 * NGF, 8 * NGF)


def test_init_statistics(g6):
  params = g6[1]["params"]
  kernel = np.asarray(params["down_5"]["conv"]["kernel"])  # 4x4x64x64
  assert abs(kernel.mean()) < 1e-3 and kernel.std() == pytest.approx(0.02, rel=0.03)
  scales = np.concatenate([np.asarray(block["norm"]["scale"]) for block in params.values()
                           if "norm" in block])
  assert scales.size >= 256
  assert scales.mean() == pytest.approx(1.0, abs=0.005)
  assert scales.std() == pytest.approx(0.02, rel=0.25)
  biases = [np.asarray(block["norm"]["bias"]) for block in params.values() if "norm" in block]
  assert all(not b.any() for b in biases)


def test_dropout(g6):
  _, variables, run = g6
  x = images(64)
  a, _ = run(variables, x, rng(1), train=True)
  b, _ = run(variables, x, rng(2), train=True)
  assert float(jnp.abs(a - b).max()) > 1e-3
  c, _ = run(variables, x, rng(1), train=True, dropout=False)
  d, _ = run(variables, x, rng(2), train=True, dropout=False)
  np.testing.assert_array_equal(c, d)


def test_train_updates_batch_stats(g6):
  _, variables, run = g6
  _, updates = run(variables, images(64), rng(), train=True)
  old, new = variables["batch_stats"], updates["batch_stats"]
  assert jax.tree.structure(old) == jax.tree.structure(new)
  assert all(float(jnp.abs(o - n).max()) > 0
             for o, n in zip(jax.tree.leaves(old), jax.tree.leaves(new)))


def test_resize_upsampling_has_3x3_kernels_and_no_checkerboard():
  """upsample='resize': 3x3 up kernels, and a constant input gives a flat interior output."""
  g = UNetGenerator(ngf=NGF, dropout_rate=0.0, upsample="resize", norm="none")
  x = images(32)
  params = init(g, x[:1])["params"]
  assert {params[f"up_{i}"]["conv"]["kernel"].shape[:2] for i in range(1, 6)} == {(3, 3)}
  up = ConvTranspose(3, upsample="resize")
  flat = jnp.ones((1, 8, 8, 2))
  y = up.apply(up.init(rng(), flat), flat)
  interior = np.asarray(y[0, 2:-2, 2:-2])
  np.testing.assert_allclose(interior, np.broadcast_to(interior[:1, :1], interior.shape),
                             atol=1e-6)  # no 2x2-periodic pattern
  stock = ConvTranspose(3)
  y = stock.apply(stock.init(rng(), flat), flat)[0, 2:-2, 2:-2]
  assert float(jnp.abs(y[0::2] - y[1::2]).max()) > 1e-3  # the transposed conv's checkerboard


@pytest.mark.parametrize("norm", ["instance", "none"])
def test_generator_norm_variants(norm):
  model = UNetGenerator(ngf=NGF, norm=norm)
  variables = init(model, images(32, batch=1))
  assert "batch_stats" not in variables
  assert "bias" in variables["params"]["down_1"]["conv"]
  y = jax.jit(functools.partial(model.apply, train=False))(variables, images(32))
  assert y.shape == (2, 32, 32, 3) and bool(jnp.isfinite(y).all())


def test_unknown_norm_is_rejected():
  with pytest.raises(ValueError, match="norm='group'"):
    abstract_variables(UNetGenerator(ngf=NGF, norm="group"), 32, 3)


# --- discriminator -------------------------------------------------------------------------------

@pytest.mark.parametrize("receptive_field, params", [(70, 2_768_705), (286, 11_159_361)])
def test_discriminator_parameter_counts(receptive_field, params):
  variables = abstract_variables(PatchDiscriminator(receptive_field), 256, 6)
  assert param_count(variables["params"]) == params


@pytest.mark.parametrize("receptive_field, size, side", [
    (1, 32, 32), (1, 64, 64), (16, 32, 14), (16, 64, 30), (70, 32, 2), (70, 64, 6),
    (34, 64, 14), (70, 256, 30), (142, 64, 2), (286, 128, 2)])
def test_discriminator_output_shapes(receptive_field, size, side):
  model = PatchDiscriminator(receptive_field, ndf=NGF)
  variables = abstract_variables(model, size, 6)
  logits = jax.eval_shape(lambda v: model.apply(v, jnp.zeros((2, size, size, 6)), train=False),
                          variables)
  assert logits.shape == (2, side, side, 1) and logits.dtype == jnp.float32


@pytest.mark.parametrize("size", [32, 64])
def test_discriminator_rejects_small_inputs(size):
  assert min_input_size(286) == 96
  with pytest.raises(ValueError, match=f"at least 96 px; got {size}x{size}"):
    abstract_variables(PatchDiscriminator(286, ndf=NGF), size, 6)


@pytest.mark.parametrize("receptive_field", [16, 34, 70])
def test_discriminator_receptive_field(receptive_field):
  """The input support of one central logit is exactly receptive_field px wide."""
  # Winograd's rounding leaves ~1e-8 gradients outside the support: exact convs here.
  model = PatchDiscriminator(receptive_field, ndf=NGF, norm="none",
                             kernels=KernelOptions(winograd_min_tiles=0))
  x = images(128, channels=6, batch=1)
  variables = init(model, x)

  def center_logit(x):
    logits = model.apply(variables, x, train=False)
    return logits[0, logits.shape[1] // 2, logits.shape[2] // 2, 0]

  support = np.abs(np.asarray(jax.jit(jax.grad(center_logit))(x)))[0].sum(axis=-1)
  rows, cols = np.nonzero(support)
  assert rows.max() - rows.min() + 1 == receptive_field
  assert cols.max() - cols.min() + 1 == receptive_field


@pytest.mark.parametrize("receptive_field, norm", [
    (70, "batch"), (70, "instance"), (70, "none"), (1, "batch")])
def test_discriminator_runs_with_each_norm(receptive_field, norm):
  model = PatchDiscriminator(receptive_field, ndf=NGF, norm=norm)
  x = images(32, channels=6)
  variables = init(model, x)
  assert ("batch_stats" in variables) == (norm == "batch")
  logits, updates = jax.jit(functools.partial(model.apply, train=True, mutable=["batch_stats"]))(
      variables, x)
  assert logits.shape[-1] == 1 and bool(jnp.isfinite(logits).all())
  assert ("batch_stats" in updates) == (norm == "batch")


@pytest.mark.parametrize("norm", ["batch", "none"])
def test_spectral_norm_makes_d_blind_to_kernel_scale(norm):
  """SN divides each kernel by its top singular value: scaling every kernel changes nothing.

  Without SN (and without BatchNorm after every conv) the logits change, so the test can fail.
  """
  x = images(32, channels=6)
  scaled = lambda v: {**v, "params": jax.tree_util.tree_map_with_path(
      lambda path, p: p * 7.0 if path[-1].key == "kernel" else p, v["params"])}
  for sn in (True, False):
    model = PatchDiscriminator(70, ndf=NGF, norm=norm, spectral_norm=sn)
    variables = init(model, x)
    assert any("sigma" in str(path) for path, _ in jax.tree_util.tree_leaves_with_path(
        variables.get("batch_stats", {}))) == sn
    run = jax.jit(functools.partial(model.apply, train=True, mutable=["batch_stats"]))
    logits, updates = run(variables, x)
    logits_scaled, updates_scaled = run(scaled(variables), x)
    if sn:
      np.testing.assert_allclose(logits_scaled, logits, rtol=1e-4, atol=1e-5)
      sigma = lambda u: u["batch_stats"]["sn_conv_1"]["conv_1/kernel/sigma"]
      assert float(sigma(updates_scaled)) == pytest.approx(7.0 * float(sigma(updates)), rel=1e-5)
    else:
      assert not np.allclose(logits_scaled, logits, rtol=1e-2)


def test_downsample_is_pix2pixhd_average_pool_without_padded_pixels():
  x = np.random.default_rng(0).standard_normal((1, 5, 5, 2)).astype(np.float32)
  want = np.zeros((1, 3, 3, 2), np.float32)
  for i in range(3):
    for j in range(3):  # window rows/cols 2i-1 .. 2i+1, clipped to the image
      want[0, i, j] = x[0, max(2 * i - 1, 0):2 * i + 2, max(2 * j - 1, 0):2 * j + 2].mean((0, 1))
  np.testing.assert_allclose(downsample(jnp.asarray(x)), want, rtol=1e-6, atol=1e-6)
  assert [coarsest_size(256, k) for k in (1, 2, 3)] == [256, 128, 64]
  assert coarsest_size(5, 2) == 3


@pytest.mark.slow
def test_multiscale_discriminator_is_one_patchgan_per_pooled_scale():
  """scale_k equals a PatchGAN with its weights on the input pooled k times; features sown."""
  model = MultiScaleDiscriminator(num_scales=3, receptive_field=16, ndf=NGF)
  x = images(64, channels=6)
  variables = init(model, x)
  assert sorted(variables["params"]) == ["scale_0", "scale_1", "scale_2"]
  logits, updates = jax.jit(functools.partial(
      model.apply, train=True, mutable=["batch_stats", "intermediates"]))(variables, x)
  assert [l.shape for l in logits] == [(2, 30, 30, 1), (2, 14, 14, 1), (2, 6, 6, 1)]
  feats = jax.tree.leaves(updates["intermediates"])
  assert len(feats) == 6 and feats[0].shape == (2, 32, 32, NGF)
  single = PatchDiscriminator(16, ndf=NGF)
  pooled = x
  for k in range(3):
    scale = {c: variables[c][f"scale_{k}"] for c in variables}
    want = single.apply(scale, pooled, train=False)
    np.testing.assert_allclose(model.apply(variables, x, train=False)[k], want, rtol=1e-5,
                               atol=1e-6)
    pooled = downsample(pooled)
