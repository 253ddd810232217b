"""pix2pix losses as pure jnp functions of discriminator logits and images."""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import optax

GAN_MODES = ("vanilla", "lsgan", "hinge")


Logits = jax.Array | Sequence[jax.Array]  # one PatchGAN's map, or one per scale


def gan_loss(logits: Logits, is_real: bool, mode: str = "vanilla",
             discriminator: bool = True) -> jax.Array:
  """Mean GAN loss of D logits against the all-real or all-fake label.

  vanilla: binary cross-entropy on logits (numerically stable, as BCEWithLogitsLoss);
  lsgan: mean squared error of the raw outputs (as the PyTorch implementation's MSELoss);
  hinge (SAGAN, BigGAN): D pays relu(1 - logit) on real and relu(1 + logit) on fake pairs,
  G pays -logit (discriminator=False, fakes labelled real). The other modes ignore
  discriminator. A multi-scale D's tuple of logit maps gives the sum of each map's mean.
  """
  if isinstance(logits, (tuple, list)):
    return sum(gan_loss(scale, is_real, mode, discriminator) for scale in logits)
  logits = logits.astype(jnp.float32)
  if mode == "hinge":
    if not discriminator:
      if not is_real:
        raise ValueError("the hinge loss of the generator labels its fakes real (is_real=True).")
      return -logits.mean()
    return jax.nn.relu(1.0 - logits if is_real else 1.0 + logits).mean()
  target = jnp.full_like(logits, 1.0 if is_real else 0.0)
  if mode == "vanilla":
    return optax.sigmoid_binary_cross_entropy(logits, target).mean()
  if mode == "lsgan":
    return jnp.square(logits - target).mean()
  raise ValueError(f"gan_mode={mode!r} is not one of {GAN_MODES}.")


def l1_loss(fake: jax.Array, target: jax.Array) -> jax.Array:
  """Mean absolute error over all pixels and channels."""
  return jnp.abs(fake.astype(jnp.float32) - target.astype(jnp.float32)).mean()


def feature_matching_loss(fake_features: Sequence[jax.Array],
                          real_features: Sequence[jax.Array]) -> jax.Array:
  """pix2pixHD's loss: sum over D's blocks of mean |D_i(fake) - D_i(real)|, times 4 / #blocks.

  The real pair's features are constants (no gradient); 4 / #blocks makes the 70x70 PatchGAN's
  four blocks weigh 1 each, as in pix2pixHD. Over a multi-scale D's blocks (all scales) it is
  pix2pixHD's weighting too: 1 / num_D per scale times 4 / (blocks per scale).
  """
  if len(fake_features) != len(real_features) or not fake_features:
    raise ValueError(f"feature matching needs the same nonzero number of D features for fake "
                     f"and real pairs; got {len(fake_features)} and {len(real_features)}.")
  total = sum(l1_loss(f, jax.lax.stop_gradient(r)) for f, r in zip(fake_features, real_features))
  return total * (4.0 / len(fake_features))


def generator_loss(fake_logits: Logits, fake: jax.Array, target: jax.Array, *,
                   l1_weight: float = 100.0, gan_weight: float = 1.0, mode: str = "vanilla",
                   feature_matching: jax.Array | None = None, fm_weight: float = 0.0
                   ) -> tuple[jax.Array, dict[str, jax.Array]]:
  """gan_weight x GAN loss of fakes labelled real, plus l1_weight x L1 to the target.

  With a feature_matching loss given, fm_weight x that is added (and reported).
  """
  gan = gan_loss(fake_logits, True, mode, discriminator=False)
  l1 = l1_loss(fake, target)
  total = gan_weight * gan + l1_weight * l1
  metrics = {"fake_d_real_class_loss": gan, "l1_loss": l1}
  if feature_matching is not None:
    total = total + fm_weight * feature_matching
    metrics["feature_matching_loss"] = feature_matching
  return total, {"total_gen_loss": total, **metrics}


def discriminator_loss(real_logits: Logits, fake_logits: Logits, *, mode: str = "vanilla",
                       weight: float = 1.0) -> tuple[jax.Array, dict[str, jax.Array]]:
  """Real pairs labelled real plus fake pairs labelled fake (PyTorch's pix2pix uses weight 0.5)."""
  real = gan_loss(real_logits, True, mode)
  fake = gan_loss(fake_logits, False, mode)
  total = weight * (real + fake)
  return total, {"total_disc_loss": total, "real_d_loss": real, "fake_d_loss": fake}
