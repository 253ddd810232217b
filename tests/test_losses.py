"""Losses against values computed by hand."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from p2p.train.losses import (discriminator_loss, feature_matching_loss, gan_loss, generator_loss,
                              l1_loss)


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
