"""DiffAugment transforms of D's inputs: what each does, pair alignment, gradients, policies."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from p2p import augment

B, S = 4, 32


def _pair(seed=0):
  """B pairs whose two images are equal, so any misalignment between them shows."""
  img = jax.random.uniform(jax.random.key(seed), (B, S, S, 3), minval=-1.0, maxval=1.0)
  return jnp.concatenate([img, img], axis=-1)


def _halves_equal(out):
  np.testing.assert_array_equal(out[..., :3], out[..., 3:])


def test_empty_policy_is_the_identity():
  x = _pair()
  assert augment.diff_augment(x, jax.random.key(1), ()) is x


@pytest.mark.parametrize("name", list(augment.TRANSFORMS))
def test_each_transform_moves_both_images_of_a_pair_alike(name):
  x = _pair()
  out = augment.TRANSFORMS[name](x, jax.random.key(2))
  assert out.shape == x.shape
  _halves_equal(out)
  assert not np.allclose(out, x)
  # Each example draws its own transform.
  assert not np.allclose(out[0] - x[0], out[1] - x[1])


def _shift(img, dy, dx):
  """img moved by (dy, dx) with zero fill, by plain numpy."""
  out = np.zeros_like(img)
  h, w = img.shape[:2]
  out[max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = \
      img[max(-dy, 0):h + min(-dy, 0), max(-dx, 0):w + min(-dx, 0)]
  return out


def test_translation_is_a_zero_filled_shift_of_at_most_an_eighth():
  x = np.asarray(_pair())
  out = np.asarray(augment.translation(jnp.asarray(x), jax.random.key(3)))
  limit = S // 8
  shifts = []
  for i in range(B):
    found = [(dy, dx) for dy in range(-limit, limit + 1) for dx in range(-limit, limit + 1)
             if np.array_equal(out[i], _shift(x[i], dy, dx))]
    assert len(found) == 1, f"example {i} is not a shift of at most {limit} px"
    shifts.append(found[0])
  assert len(set(shifts)) > 1


def test_cutout_zeroes_one_square_of_half_the_side_clipped_at_the_border():
  out = np.asarray(augment.cutout(jnp.ones((64, S, S, 6)), jax.random.key(4)))
  assert set(np.unique(out)) <= {0.0, 1.0}
  _halves_equal(out)
  sides = []
  for zero in out[..., 0] == 0:
    rows, cols = np.nonzero(zero.any(axis=1))[0], np.nonzero(zero.any(axis=0))[0]
    # The zeros fill exactly the rectangle they span.
    assert zero.sum() == len(rows) * len(cols)
    assert np.ptp(rows) + 1 == len(rows) and np.ptp(cols) + 1 == len(cols)
    sides += [len(rows), len(cols)]
  assert max(sides) == S // 2 and min(sides) < S // 2  # full squares and clipped ones


def test_color_changes_brightness_saturation_contrast_within_diffaugments_ranges():
  x = _pair()
  out = augment.color(x, jax.random.key(5))
  _halves_equal(out)
  # A grey image (all channels equal) stays grey and shifts by at most 0.5, times contrast.
  grey = jnp.zeros((B, S, S, 6))
  out = np.asarray(augment.color(grey, jax.random.key(6)))
  assert np.all(np.abs(out) <= 0.5) and np.ptp(out.reshape(B, -1), axis=1).max() < 1e-6


def test_gradients_flow_through_the_policy_to_the_kept_pixels():
  x = _pair()
  policy = ("translation", "cutout")
  key = jax.random.key(7)
  grad = jax.grad(lambda v: augment.diff_augment(v, key, policy).sum())(x)
  kept = np.asarray(augment.diff_augment(jnp.ones_like(x), key, policy))
  # Each kept output pixel comes from one input pixel: the gradient is 1 there, 0 elsewhere.
  assert set(np.unique(grad)) == {0.0, 1.0}
  assert grad.sum() == kept.sum()
  color_grad = jax.grad(lambda v: augment.diff_augment(v, key, ("color",)).sum())(x)
  assert np.all(np.isfinite(color_grad)) and np.abs(color_grad).sum() > 0


def test_policies_parse_in_order_and_bad_ones_name_the_choices():
  assert augment.parse_policy("") == ()
  assert augment.parse_policy("cutout, color") == ("cutout", "color")
  for bad in ("flip", "color,color"):
    with pytest.raises(ValueError, match="color.*translation.*cutout"):
      augment.parse_policy(bad)
