"""The CPU-fast conv kernels equal the stock lax/flax convs in outputs and in both gradients."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from p2p.models.layers import Conv, ConvTranspose
from p2p.ops import KernelOptions, winograd
from p2p.ops import conv as kernels

RTOL = 2e-5


def _random(shape, seed):
  return jnp.asarray(np.random.default_rng(seed).normal(size=shape), jnp.float32)


def _assert_same_vjp(fast, stock, x, kernel):
  """Same outputs and same gradients for inputs and kernel under a random cotangent."""
  y_stock, vjp_stock = jax.vjp(stock, x, kernel)
  y_fast, vjp_fast = jax.vjp(fast, x, kernel)
  assert y_fast.shape == y_stock.shape
  g = _random(y_stock.shape, 99)
  for got, want in zip((y_fast, *vjp_fast(g)), (y_stock, *vjp_stock(g))):
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=RTOL * float(jnp.abs(want).max()))


def _down(x, k):
  return kernels.lax_conv(x, k, (2, 2), ((1, 1), (1, 1)))


def _up(x, k):
  return lax.conv_transpose(x, k, (2, 2), "SAME", dimension_numbers=kernels.DIMENSION_NUMBERS)


@pytest.mark.parametrize("hw", [(2, 2), (4, 4), (8, 6), (16, 16)])
def test_matmul_conv_s2_equals_strided_conv(hw):
  x, k = _random((2, *hw, 5), 0), _random((4, 4, 5, 7), 1)
  _assert_same_vjp(kernels.matmul_conv_s2, _down, x, k)


@pytest.mark.parametrize("impl", [kernels.phase_conv_transpose, kernels.matmul_conv_transpose,
                                  kernels.lax_forward_conv_transpose])
@pytest.mark.parametrize("hw,features", [((1, 1), 6), ((2, 2), 3), ((3, 5), 6), ((8, 8), 1),
                                         ((3, 5), kernels.FUSED_PHASE_FEATURES + 2)])
def test_transposed_convs_equal_lax_conv_transpose(impl, hw, features):
  """Both phase forms (one wide conv up to FUSED_PHASE_FEATURES, four beyond), the GEMM, and
  the GEMM's gradients under lax's forward."""
  x, k = _random((2, *hw, 4), 2), _random((4, 4, 4, features), 3)
  _assert_same_vjp(impl, _up, x, k)


@pytest.mark.parametrize("hw", [(1, 1), (3, 5), (8, 8)])
def test_nearest_up_kernel_equals_nearest_upsampling_then_3x3_conv(hw):
  """Resize-conv as a transposed conv: same outputs and gradients for x and the 3x3 kernel."""
  x, k3 = _random((2, *hw, 4), 6), _random((3, 3, 4, 5), 7)
  as_transposed = lambda x, k: kernels.phase_conv_transpose(x, kernels.nearest_up_kernel(k))
  resize_conv = lambda x, k: kernels.lax_conv(jnp.repeat(jnp.repeat(x, 2, 1), 2, 2), k, (1, 1),
                                              ((1, 1), (1, 1)))
  _assert_same_vjp(as_transposed, resize_conv, x, k3)


@pytest.mark.parametrize("channels", [6, 40])  # kernel gradient per tap / by shifted gradients
@pytest.mark.parametrize("kernel_size,padding", [(4, ((1, 1), (1, 1))), (2, ((1, 0), (0, 1))),
                                                 (3, ((0, 0), (2, 1)))])
def test_narrow_conv_equals_stride1_conv(kernel_size, padding, channels):
  x, k = _random((2, 9, 7, channels), 4), _random((kernel_size, kernel_size, channels, 2), 5)
  stock = lambda x, k: kernels.lax_conv(x, k, (1, 1), padding)
  _assert_same_vjp(lambda x, k: kernels.narrow_conv(x, k, padding), stock, x, k)


@pytest.mark.parametrize("hw,channels", [((4, 4), 3), ((8, 6), 5), ((32, 32), 8)])
def test_s2_conv_equals_strided_conv(hw, channels):
  x, k = _random((2, *hw, channels), 10), _random((4, 4, channels, 7), 11)
  _assert_same_vjp(kernels.s2_conv, _down, x, k)


@pytest.mark.parametrize("tile,taps", [(4, 4), (2, 4), (4, 2), (2, 3)])
def test_winograd_matrices_compute_the_correlation(tile, taps):
  a_t, g, b_t = winograd.winograd_matrices(tile, taps)
  rng = np.random.default_rng(tile * 10 + taps)
  d, w = rng.normal(size=tile + taps - 1), rng.normal(size=taps)
  want = [sum(d[i + k] * w[k] for k in range(taps)) for i in range(tile)]
  np.testing.assert_allclose(a_t @ ((g @ w) * (b_t @ d)), want, rtol=1e-10, atol=1e-10)


def test_winograd_matrices_reject_repeated_points():
  with pytest.raises(ValueError, match="repeated point"):
    winograd.winograd_matrices(2, 3, (0.0, 1.0, 1.0))


@pytest.mark.slow
@pytest.mark.parametrize("hw,padding,kernel_size", [
    ((9, 9), ((1, 1), (1, 1)), 4),    # 8x8 outputs: exact tiles
    ((7, 12), ((1, 1), (1, 1)), 4),   # 6x11 outputs: partial tiles
    ((5, 6), ((0, 0), (2, 1)), 3),    # other kernel sizes and paddings
])
def test_winograd_conv_equals_stride1_conv(hw, padding, kernel_size):
  x, k = _random((2, *hw, 16), 12), _random((kernel_size, kernel_size, 16, 9), 13)
  stock = lambda x, k: kernels.lax_conv(x, k, (1, 1), padding)
  _assert_same_vjp(lambda x, k: winograd.winograd_conv(x, k, padding), stock, x, k)


def test_winograd_tiles_counts_output_tiles():
  # 32 px in, padding 1, 4x4 kernel: 31 x 31 outputs = 8 x 8 tiles of 4 per image
  assert winograd.winograd_tiles(4, 32, 32, ((1, 1), (1, 1))) == 256
  assert winograd.winograd_tiles(1, 9, 5, ((1, 1), (1, 1))) == 2 * 1


@pytest.mark.parametrize("min_tiles,uses_winograd", [(0, False), (4, True), (5, False)])
def test_conv_module_winograd_threshold(min_tiles, uses_winograd):
  """2 images of 9 x 9 -> 8 x 8 outputs = 4 tiles each: Winograd from 4 tiles up, same values."""
  x = _random((1, 9, 9, 6), 14)
  fast = Conv(8, 4, 1, kernels=KernelOptions(winograd_min_tiles=min_tiles))
  stock = Conv(8, 4, 1, kernels=KernelOptions(winograd_min_tiles=0))
  params = stock.init(jax.random.key(0), x)
  jaxpr = str(jax.make_jaxpr(lambda x: fast.apply(params, x))(x))
  assert ("conv_general_dilated" not in jaxpr) == uses_winograd
  np.testing.assert_allclose(fast.apply(params, x), stock.apply(params, x), rtol=RTOL, atol=1e-6)


def test_conv_module_keeps_bfloat16_off_winograd():
  x = _random((1, 9, 9, 6), 14)
  conv = Conv(8, 4, 1, kernels=KernelOptions(winograd_min_tiles=1, bf16_gemm=False),
              dtype=jnp.bfloat16)
  params = conv.init(jax.random.key(0), x)
  assert "conv_general_dilated" in str(jax.make_jaxpr(lambda x: conv.apply(params, x))(x))


@pytest.mark.slow
@pytest.mark.parametrize("features,kernel_size,stride,hw,min_tiles", [
    (7, 4, 2, (8, 8), 0),      # matmul path
    (7, 4, 2, (32, 32), 0),    # above matmul_conv_max_size: s2_conv
    (7, 4, 2, (7, 9), 0),      # odd sides: lax conv
    (1, 4, 1, (9, 9), 0),      # narrow kernel gradient
    (5, 1, 1, (6, 6), 0),      # 1x1 conv
    (7, 4, 1, (9, 9), 1),      # Winograd
])
def test_conv_module_equals_flax_conv(features, kernel_size, stride, hw, min_tiles):
  """Same parameter tree, same initial values, same outputs and gradients as nn.Conv."""
  pad = (kernel_size - 1) // 2
  stock = nn.Conv(features, (kernel_size, kernel_size), strides=(stride, stride),
                  padding=((pad, pad), (pad, pad)), kernel_init=nn.initializers.normal(0.02))
  fast = Conv(features, kernel_size, stride,
              kernels=KernelOptions(winograd_min_tiles=min_tiles))
  x = _random((2, *hw, 3), 6)
  params = stock.init(jax.random.key(0), x)
  fast_params = fast.init(jax.random.key(0), x)
  assert jax.tree.structure(fast_params) == jax.tree.structure(params)
  for a, b in zip(jax.tree.leaves(fast_params), jax.tree.leaves(params)):
    np.testing.assert_array_equal(a, b)
  loss = lambda module, p, x: jnp.sum(jnp.sin(module.apply(p, x)))
  want, want_grads = jax.value_and_grad(loss, argnums=(1, 2))(stock, params, x)
  got, got_grads = jax.value_and_grad(loss, argnums=(1, 2))(fast, params, x)
  # Winograd's rounding errors scale with the largest value, not with each element
  np.testing.assert_allclose(got, want, rtol=1e-4 if min_tiles else 1e-5)
  for a, b in zip(jax.tree.leaves(got_grads), jax.tree.leaves(want_grads)):
    atol = RTOL * float(jnp.abs(b).max()) if min_tiles else 1e-6
    np.testing.assert_allclose(a, b, rtol=RTOL, atol=atol)


@pytest.mark.parametrize("hw", [(1, 1), (4, 4), (16, 16)])
def test_conv_transpose_module_matmul_threshold_changes_nothing(hw):
  x = _random((1, *hw, 4), 7)
  always = ConvTranspose(3, kernels=KernelOptions(matmul_conv_max_size=64))
  never = ConvTranspose(3, kernels=KernelOptions(matmul_conv_max_size=0))
  params = always.init(jax.random.key(1), x)
  np.testing.assert_allclose(always.apply(params, x), never.apply(params, x), rtol=1e-5,
                             atol=1e-6)


@pytest.mark.slow
def test_networks_with_and_without_matmul_convs_agree():
  """U-Net (down to 1x1) and PatchGAN: same params, outputs and gradients either way."""
  from p2p.models import PatchDiscriminator, UNetGenerator
  x = _random((2, 32, 32, 3), 8)
  options = lambda m: KernelOptions(matmul_conv_max_size=m)  # noqa: E731
  for make, inputs in ((lambda m: UNetGenerator(ngf=8, kernels=options(m)), x),
                       (lambda m: PatchDiscriminator(ndf=8, kernels=options(m)),
                        jnp.concatenate([x, x], -1))):
    fast, stock = make(16), make(0)
    variables = fast.init(jax.random.key(0), inputs, train=False)
    assert jax.tree.structure(stock.init(jax.random.key(0), inputs, train=False)) == (
        jax.tree.structure(variables))
    def loss(module, params):
      out = module.apply({**variables, "params": params}, inputs, train=False)
      return jnp.sum(jnp.sin(3 * out))
    grad_fn = jax.jit(jax.value_and_grad(loss, argnums=1), static_argnums=0)  # not op by op
    want, want_grads = grad_fn(stock, variables["params"])
    got, got_grads = grad_fn(fast, variables["params"])
    np.testing.assert_allclose(got, want, rtol=1e-4)
    for a, b in zip(jax.tree.leaves(got_grads), jax.tree.leaves(want_grads)):
      np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-5 * float(jnp.abs(b).max()))


@pytest.mark.slow
def test_discriminator_with_and_without_winograd_agrees():
  """The PatchGAN's stride-1 conv as Winograd: same outputs and gradients within rounding."""
  from p2p.models import PatchDiscriminator
  x = _random((2, 64, 64, 6), 15)
  fast = PatchDiscriminator(ndf=8, kernels=KernelOptions(winograd_min_tiles=1))
  stock = PatchDiscriminator(ndf=8, kernels=KernelOptions(winograd_min_tiles=0))
  variables = stock.init(jax.random.key(0), x, train=False)
  jaxpr = str(jax.make_jaxpr(lambda v: fast.apply(v, x, train=False))(variables))
  assert jaxpr.count("conv_general_dilated") < str(
      jax.make_jaxpr(lambda v: stock.apply(v, x, train=False))(variables)).count(
          "conv_general_dilated")
  def loss(module, params):
    return jnp.sum(jnp.sin(3 * module.apply({**variables, "params": params}, x, train=False)))
  grad_fn = jax.jit(jax.value_and_grad(loss, argnums=1), static_argnums=0)
  want, want_grads = grad_fn(stock, variables["params"])
  got, got_grads = grad_fn(fast, variables["params"])
  np.testing.assert_allclose(got, want, rtol=1e-4)
  for a, b in zip(jax.tree.leaves(got_grads), jax.tree.leaves(want_grads)):
    np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4 * float(jnp.abs(b).max()))
