"""Losses against values computed by hand."""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from p2p.losses import (average_pool, discriminator_loss, feature_matching_loss, gan_loss,
                       generator_loss, l1_loss, lowpass_l1_loss, r1_penalty,
                       r1_value_and_grad, relativistic_loss)


def test_vanilla_gan_loss_by_hand():
  logits = jnp.array([[0.0, 2.0], [-1.0, 3.0]])
  sig = 1 / (1 + np.exp(-np.array([0.0, 2.0, -1.0, 3.0])))
  assert float(gan_loss(logits, True)) == pytest.approx(np.mean(-np.log(sig)), rel=1e-6)
  assert float(gan_loss(logits, False)) == pytest.approx(np.mean(-np.log(1 - sig)), rel=1e-6)


def test_vanilla_gan_loss_is_stable_for_large_logits():
  logits = jnp.array([1000.0, -1000.0])
  assert float(gan_loss(logits, True)) == pytest.approx(500.0)
  assert math.isfinite(float(gan_loss(logits, False)))


def test_lsgan_loss_by_hand():
  logits = jnp.array([0.5, -1.0, 2.0])
  assert float(gan_loss(logits, True, "lsgan")) == pytest.approx((0.25 + 4 + 1) / 3)
  assert float(gan_loss(logits, False, "lsgan")) == pytest.approx((0.25 + 1 + 4) / 3)
  with pytest.raises(ValueError, match="gan_mode"):
    gan_loss(logits, True, "wgan")


def test_hinge_loss_by_hand():
  logits = jnp.array([0.5, -2.0, 3.0])
  assert float(gan_loss(logits, True, "hinge")) == pytest.approx((0.5 + 3.0 + 0.0) / 3)
  assert float(gan_loss(logits, False, "hinge")) == pytest.approx((1.5 + 0.0 + 4.0) / 3)
  assert float(gan_loss(logits, True, "hinge", discriminator=False)) == pytest.approx(-0.5)
  with pytest.raises(ValueError, match="labels its fakes real"):
    gan_loss(logits, False, "hinge", discriminator=False)
  total, m = generator_loss(logits, jnp.zeros(2), jnp.zeros(2), mode="hinge")
  assert float(m["fake_d_real_class_loss"]) == pytest.approx(-0.5)
  d_total, _ = discriminator_loss(logits, logits, mode="hinge")
  assert float(d_total) == pytest.approx((3.5 + 5.5) / 3)


def test_relativistic_loss_by_hand_compares_patches_pairwise():
  """RpGAN: softplus(other - own) per patch, so a constant shift of both maps changes nothing."""
  real = jnp.array([[1.0, -2.0], [0.5, 3.0]])
  fake = jnp.array([[0.0, 1.0], [0.5, -1.0]])
  softplus = lambda v: np.log1p(np.exp(v))
  want_d = np.mean(softplus(np.array([-1.0, 3.0, 0.0, -4.0])))
  assert float(relativistic_loss(real, fake)) == pytest.approx(want_d, rel=1e-6)
  assert float(relativistic_loss(real + 7.0, fake + 7.0)) == pytest.approx(want_d, rel=1e-5)
  d_total, m = discriminator_loss(real, fake, mode="relativistic", weight=0.5)
  assert float(m["real_d_loss"]) == float(m["fake_d_loss"]) == pytest.approx(want_d, rel=1e-6)
  assert float(d_total) == pytest.approx(want_d, rel=1e-6)
  g_total, m = generator_loss(fake, jnp.zeros(2), jnp.ones(2), l1_weight=10.0,
                              mode="relativistic", real_logits=real)
  want_g = np.mean(softplus(np.array([1.0, -3.0, 0.0, 4.0])))
  assert float(m["fake_d_real_class_loss"]) == pytest.approx(want_g, rel=1e-6)
  assert float(g_total) == pytest.approx(want_g + 10.0, rel=1e-6)
  # G's gradient reaches its fake logits only, never D's logits on the real pair.
  grad_real = jax.grad(lambda r: generator_loss(fake, jnp.zeros(2), jnp.ones(2),
                                                mode="relativistic", real_logits=r)[0])(real)
  assert not np.any(np.asarray(grad_real))
  fine, coarse = (real, fake), (fake, real)
  assert float(relativistic_loss(fine, coarse)) == pytest.approx(
      float(relativistic_loss(real, fake)) + float(relativistic_loss(fake, real)), rel=1e-6)
  with pytest.raises(ValueError, match="needs real_logits"):
    generator_loss(fake, jnp.zeros(2), jnp.ones(2), mode="relativistic")
  with pytest.raises(ValueError, match="relativistic_loss"):
    gan_loss(fake, True, "relativistic")


def test_generator_loss_is_gan_plus_weighted_l1():
  fake = jnp.array([[0.5, -0.5]])
  target = jnp.array([[0.0, 0.0]])
  assert float(l1_loss(fake, target)) == pytest.approx(0.5)
  total, m = generator_loss(jnp.zeros((1, 2, 2, 1)), fake, target, l1_weight=100.0)
  assert float(m["fake_d_real_class_loss"]) == pytest.approx(math.log(2))
  assert float(m["l1_loss"]) == pytest.approx(0.5)
  assert float(total) == pytest.approx(math.log(2) + 50.0)
  assert set(m) == {"total_gen_loss", "fake_d_real_class_loss", "l1_loss"}
  l1_only, m = generator_loss(jnp.zeros((1, 2, 2, 1)), fake, target, gan_weight=0.0)
  assert float(l1_only) == pytest.approx(50.0)  # the GAN term is still reported
  assert float(m["fake_d_real_class_loss"]) == pytest.approx(math.log(2))


def test_lowpass_l1_compares_block_means_only():
  """l1_pool > 1: the L1 of pool x pool block means, blind to texture inside a block."""
  rng = np.random.default_rng(0)
  target = jnp.asarray(rng.uniform(-1, 1, (2, 8, 8, 3)), jnp.float32)
  blocks = np.asarray(target).reshape(2, 2, 4, 2, 4, 3).mean(axis=(2, 4))
  np.testing.assert_allclose(average_pool(target, 4), blocks, rtol=1e-6)
  # Zero-mean texture inside each 4 x 4 block changes the plain L1, not the low-pass one.
  texture = jnp.asarray(np.tile([[1.0, -1.0], [-1.0, 1.0]], (4, 4))[None, :, :, None] * 0.3)
  assert float(lowpass_l1_loss(target + texture, target, 4)) == pytest.approx(0.0, abs=1e-6)
  assert float(lowpass_l1_loss(target + texture, target, 1)) == pytest.approx(0.3, rel=1e-5)
  # A shift of a block's mean shows up, as |shift| x (share of blocks moved).
  moved = target.at[:, :4, :4].add(0.5)
  assert float(lowpass_l1_loss(moved, target, 4)) == pytest.approx(0.5 / 4, rel=1e-5)
  total, m = generator_loss(jnp.zeros((2, 1, 1, 1)), moved, target, l1_weight=10.0, l1_pool=4)
  assert float(m["l1_loss"]) == pytest.approx(0.5 / 4, rel=1e-5)
  assert float(total) == pytest.approx(math.log(2) + 10 * 0.5 / 4, rel=1e-5)
  with pytest.raises(ValueError, match="factor 3 does not divide the image size 8x8"):
    average_pool(target, 3)


def test_discriminator_loss_is_real_plus_fake():
  total, m = discriminator_loss(jnp.zeros((2, 3)), jnp.zeros((2, 3)))
  assert float(m["real_d_loss"]) == float(m["fake_d_loss"]) == pytest.approx(math.log(2))
  assert float(total) == pytest.approx(2 * math.log(2))
  half, _ = discriminator_loss(jnp.zeros((2, 3)), jnp.zeros((2, 3)), weight=0.5)
  assert float(half) == pytest.approx(math.log(2))
  assert set(m) == {"total_disc_loss", "real_d_loss", "fake_d_loss"}


def test_multiscale_logits_sum_each_scales_mean_loss():
  """pix2pixHD sums the GAN loss over its discriminators' scales."""
  fine, coarse = jnp.array([[0.0, 2.0], [-1.0, 3.0]]), jnp.array([0.5, -1.0, 2.0])
  for mode in ("vanilla", "lsgan"):
    for is_real in (True, False):
      want = float(gan_loss(fine, is_real, mode)) + float(gan_loss(coarse, is_real, mode))
      assert float(gan_loss((fine, coarse), is_real, mode)) == pytest.approx(want, rel=1e-6)
  total, m = discriminator_loss((fine, coarse), [coarse, fine])
  assert float(m["real_d_loss"]) == pytest.approx(float(gan_loss((fine, coarse), True)))
  assert float(total) == pytest.approx(float(m["real_d_loss"] + m["fake_d_loss"]))


def test_feature_matching_is_pix2pixhd_weighted_l1_on_d_features_by_hand():
  fake = [jnp.full((1, 4, 4, 2), 1.0), jnp.full((1, 2, 2, 3), -1.0)]
  real = [jnp.full((1, 4, 4, 2), 0.5), jnp.full((1, 2, 2, 3), 1.0)]
  # (0.5 + 2.0) x 4 / 2 blocks.
  assert float(feature_matching_loss(fake, real)) == pytest.approx(5.0)
  assert float(feature_matching_loss(real, real)) == 0.0
  with pytest.raises(ValueError, match="same nonzero number"):
    feature_matching_loss(fake, real[:1])
  # Gradients reach the fake features only.
  g_fake, g_real = jax.grad(lambda f, r: feature_matching_loss(f, r), argnums=(0, 1))(fake, real)
  assert float(jnp.abs(g_fake[0]).sum()) > 0 and float(jnp.abs(g_real[0]).sum()) == 0.0
  target = jnp.zeros((1, 2))
  total, m = generator_loss(jnp.zeros((1, 2, 2, 1)), target, target, feature_matching=jnp.array(
      0.25), fm_weight=10.0)
  assert float(total) == pytest.approx(math.log(2) + 2.5)
  assert float(m["feature_matching_loss"]) == pytest.approx(0.25)


def test_r1_penalty_by_hand():
  """A linear D, every patch logit = <w, image>: the gradient of the normalised sum is
  P / sqrt(P) w = sqrt(P) w per image, so the penalty is P |w|^2 whatever the batch size."""
  w = jnp.arange(2 * 2 * 3, dtype=jnp.float32).reshape(2, 2, 3) / 10

  def d_fn(images, patches=4):
    logit = (images * w).sum(axis=(1, 2, 3))
    return jnp.broadcast_to(logit[:, None, None, None], (images.shape[0], patches, 1, 1))

  images = jnp.ones((3, 2, 2, 3))
  sq = float(jnp.square(w).sum())
  assert float(r1_penalty(d_fn, images)) == pytest.approx(4 * sq, rel=1e-5)
  # Two scales: normalised sums add, so the gradient is (2 + 3) w.
  two_scales = r1_penalty(lambda x: (d_fn(x, 4), d_fn(x, 9)), images)
  assert float(two_scales) == pytest.approx(25 * sq, rel=1e-5)
  # A D flat in its input pays nothing.
  assert float(r1_penalty(lambda x: jnp.zeros((x.shape[0], 3, 3, 1)), images)) == 0.0


def test_r1_value_and_grad_equals_differentiating_the_penalty():
  """Reverse-over-forward gives reverse-over-reverse's gradient, for a nonlinear two-scale D."""
  keys = jax.random.split(jax.random.key(0), 3)
  params = {"w1": jax.random.normal(keys[0], (3, 3, 3, 4)) * 0.5,
            "w2": jax.random.normal(keys[1], (3, 3, 4, 1)) * 0.5}
  real = jax.random.uniform(keys[2], (2, 8, 8, 3), minval=-1, maxval=1)

  def d_fn(p, images):
    conv = functools.partial(jax.lax.conv_general_dilated, window_strides=(1, 1),
                             padding="SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
    h = jax.nn.leaky_relu(conv(images, p["w1"]), 0.2)
    out = conv(jnp.tanh(h), p["w2"])
    return out, out[:, ::2, ::2]

  want_value, want_grads = jax.value_and_grad(
      lambda p: r1_penalty(lambda images: d_fn(p, images), real))(params)
  value, grads = r1_value_and_grad(d_fn, params, real)
  assert float(value) == pytest.approx(float(want_value), rel=1e-5) and float(value) > 0
  for k in params:
    np.testing.assert_allclose(grads[k], want_grads[k], rtol=1e-4, atol=1e-6)
    assert float(jnp.abs(grads[k]).max()) > 0
