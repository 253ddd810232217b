"""Image-quality metrics: the seed project's definitions and standard ones beside them.

All functions take `fake` and `real` as NHWC float arrays in [-1, 1] (any channel count C: gray,
RGB, RGBA, N bands; any H, W >= 11 and any N) and return one value per image, shape (N,),
float64. Every mean below is over the pixels (and channels) of one image. Evaluators scale
images of other bit depths to [-1, 1] by their value range first (p2p.data.values.to_unit).

Seed definitions (the TensorFlow course project whose tables we compare against):
  seed/l1     mean |fake - real| in [-1, 1] units.
  seed/psnr   tf.image.psnr with max_val 2: 10 log10(2^2 / mean((fake - real)^2)); +inf when the
              images are identical (TF's convention, kept: no cap).
  seed/ssim   tf.image.ssim with max_val 2 on the [-1, 1] images: 11x11 Gaussian window with
              sigma 1.5, 'VALID' filtering (no padding), k1 0.01, k2 0.03, C1 = (0.01 * 2)^2,
              C2 = (0.03 * 2)^2; the SSIM map averaged over positions and channels.
              (SSIM is not shift-invariant, so this is not the same number as ssim below.)
  seed/hp_l1  L1 between normalised high-pass images. For each image x, the high-pass image is
              lap(x) = K * (x_R + x_G + x_B), a 3x3 Laplacian of the RGB sum (of all C channels
              for other counts), zero-padded to the same size ('SAME', as tf.nn.conv2d), K the
              8-neighbour kernel [[1, 1, 1], [1, -8, 1], [1, 1, 1]]. Each image's lap is divided by
              max |lap| over its normalisation batch + 1e-8, separately for fake and real, and
              seed/hp_l1 = mean |lap_n(fake) - lap_n(real)| over the H x W map. The normalisation
              batch is a group of consecutive images (`group`; default the whole input); the
              calibration below points to the 4 grid patches of one image, so evaluators pass
              each image's patches together with group=4. Zero padding makes even a constant
              image's lap non-zero on the border (a frame of value -c*(missing neighbours)); that
              is part of the seed's definition.
              Calibration (constant image of the training photos' mean colour vs the 400 grid
              patches of the 100 local val images; published 0.083): this definition gives 0.0828.
              Other variants: |lap| instead of lap 0.0820; 'VALID' 0.0786; 4-neighbour kernel
              0.0754 ('SAME'), 0.0720 ('VALID'); per-patch normalisation (group=1) 0.0908, or
              0.0834 with the 4-neighbour kernel; one max over all 400 patches 0.055-0.063.
              The other seed metrics on the same data are 0.2757 / 15.14 / 0.2368 against the
              published 0.272 / 15.24 / 0.235: within 0.7 standard errors of a 100-image mean,
              consistent with the published row coming from the full 1098-image val split.

Standard definitions (batch-independent, on the 8-bit image a user would save): `fake` and `real`
are first quantised to uint8 as p2p.images.to_uint8 does, q = clip(round((x + 1) * 127.5), 0, 255).
  l1_8bit     mean |q_fake - q_real| in 8-bit levels (0..255).
  psnr_8bit   10 log10(255^2 / mean((q_fake - q_real)^2)); +inf for identical 8-bit images.
  ssim        SSIM of q / 255 in [0, 1] with data range 1 (C1 = 0.01^2, C2 = 0.03^2), the same
              11x11 sigma-1.5 Gaussian window and 'VALID' filtering, averaged over positions and
              channels; equals scikit-image's structural_similarity(gaussian_weights=True,
              sigma=1.5, use_sample_covariance=False, data_range=255, channel_axis=-1) on the uint8
              images.
  hp_l1       mean |lap(q_fake) - lap(q_real)| in 8-bit levels, lap the same 8-neighbour
              Laplacian applied to each channel separately with 'VALID' filtering (interior
              pixels only, so no border artefacts), not normalised: it depends on one image
              pair only and is comparable to l1_8bit.
"""

from __future__ import annotations

import functools

import dm_pix
import jax
import jax.numpy as jnp
import numpy as np

SEED_MAX_VAL = 2.0      # tf.image.ssim / tf.image.psnr max_val for images in [-1, 1]
SSIM_FILTER_SIZE = 11
SSIM_FILTER_SIGMA = 1.5
HP_EPS = 1e-8
CHUNK_IMAGES = 16       # images per jitted call: bounds memory for large batches
LAPLACIANS = {
    "8": np.array([[1, 1, 1], [1, -8, 1], [1, 1, 1]], np.float32),
    "4": np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]], np.float32),
}
METRIC_NAMES = ("seed/l1", "seed/psnr", "seed/ssim", "seed/hp_l1",
                "l1_8bit", "psnr_8bit", "ssim", "hp_l1")


def _check_pair(fake: np.ndarray, real: np.ndarray,
                min_size: int = 1) -> tuple[np.ndarray, np.ndarray]:
  """float32 copies of an NHWC pair in [-1, 1]; ValueError naming the problem otherwise."""
  fake = np.asarray(fake, np.float32)
  real = np.asarray(real, np.float32)
  if fake.ndim != 4 or fake.shape != real.shape:
    raise ValueError(f"metrics need fake and real as NHWC arrays of the same shape; got "
                     f"{fake.shape} and {real.shape} (add a batch axis with x[None]).")
  if min(fake.shape[1:3]) < min_size:
    raise ValueError(f"this metric needs images of at least {min_size}x{min_size} pixels "
                     f"(the SSIM window or the Laplacian); got {fake.shape[1]}x{fake.shape[2]}.")
  for name, x in (("fake", fake), ("real", real)):
    if x.size and (not np.isfinite(x).all() or np.abs(x).max() > 1.0 + 1e-3):
      raise ValueError(f"metrics expect {name} in [-1, 1]; got values in "
                       f"[{x.min():.3g}, {x.max():.3g}] (rescale uint8 images with "
                       f"x / 127.5 - 1).")
  return fake, real


def _chunked(fn, *arrays: np.ndarray) -> np.ndarray:
  """Applies a jitted per-image fn over CHUNK_IMAGES images at a time; float64 (N,)."""
  n = arrays[0].shape[0]
  parts = [np.asarray(fn(*(a[i:i + CHUNK_IMAGES] for a in arrays)))
           for i in range(0, n, CHUNK_IMAGES)]
  return np.concatenate(parts).astype(np.float64) if parts else np.zeros((0,), np.float64)


def _gaussian_band(n: int) -> np.ndarray:
  """(n - 10, n) matrix whose rows are the 11-tap sigma-1.5 Gaussian: a 'VALID' 1-D blur."""
  taps = np.arange(SSIM_FILTER_SIZE) - SSIM_FILTER_SIZE // 2
  g = np.exp(-0.5 * (taps / SSIM_FILTER_SIGMA) ** 2)
  g /= g.sum()
  band = np.zeros((n - SSIM_FILTER_SIZE + 1, n), np.float32)
  for i in range(band.shape[0]):
    band[i, i:i + SSIM_FILTER_SIZE] = g
  return band


def _gaussian_blur(z_NxHxWxC: jax.Array) -> jax.Array:
  """Separable 'VALID' Gaussian blur as two banded matmuls (5x faster than dm_pix's on CPU)."""
  gy = jnp.asarray(_gaussian_band(z_NxHxWxC.shape[-3]))
  gx = jnp.asarray(_gaussian_band(z_NxHxWxC.shape[-2]))
  z = jnp.einsum("oh,nhwc->nowc", gy, z_NxHxWxC, precision="highest")
  return jnp.einsum("pw,nowc->nopc", gx, z, precision="highest")


def _ssim(a: jax.Array, b: jax.Array, max_val: float) -> jax.Array:
  """Per-image mean SSIM (tf.image.ssim conventions) via dm_pix."""
  return dm_pix.ssim(a, b, max_val=max_val, filter_size=SSIM_FILTER_SIZE,
                     filter_sigma=SSIM_FILTER_SIGMA, k1=0.01, k2=0.03,
                     filter_fn=_gaussian_blur)


def _quantise(x: jax.Array) -> jax.Array:
  """[-1, 1] float -> 8-bit levels 0..255 as float32, as p2p.images.to_uint8."""
  return jnp.clip(jnp.round((x + 1.0) * 127.5), 0.0, 255.0)


def _laplacian(x_NxHxWxC: jax.Array, kernel: str, padding: str) -> jax.Array:
  """3x3 Laplacian of each channel (correlation); 'SAME' pads with zeros, 'VALID' shrinks by 2."""
  k = LAPLACIANS[kernel]
  if padding == "SAME":
    x_NxHxWxC = jnp.pad(x_NxHxWxC, ((0, 0), (1, 1), (1, 1), (0, 0)))
  h, w = x_NxHxWxC.shape[1] - 2, x_NxHxWxC.shape[2] - 2
  return sum(float(k[i, j]) * x_NxHxWxC[:, i:i + h, j:j + w]
             for i in range(3) for j in range(3) if k[i, j])


@jax.jit
def _seed_ssim(fake: jax.Array, real: jax.Array) -> jax.Array:
  return _ssim(fake, real, SEED_MAX_VAL)


@jax.jit
def _seed_psnr(fake: jax.Array, real: jax.Array) -> jax.Array:
  # Halving is exact, so identical images give mse 0 and +inf (a shift by +1 would not be).
  return dm_pix.psnr(fake / 2.0, real / 2.0)


@jax.jit
def _seed_l1(fake: jax.Array, real: jax.Array) -> jax.Array:
  return jnp.mean(jnp.abs(fake - real), axis=(1, 2, 3))


@functools.partial(jax.jit, static_argnames=("group", "kernel", "padding", "absolute"))
def _seed_hp_l1(fake: jax.Array, real: jax.Array, group: int, kernel: str, padding: str,
                absolute: bool) -> jax.Array:
  def normalised(x_NxHxWxC):
    lap_NxHxWx1 = _laplacian(x_NxHxWxC.sum(-1, keepdims=True), kernel, padding)
    if absolute:
      lap_NxHxWx1 = jnp.abs(lap_NxHxWx1)
    lap_GxKxHxW = lap_NxHxWx1[..., 0].reshape(-1, group, *lap_NxHxWx1.shape[1:3])
    peak_Gx1x1x1 = jnp.abs(lap_GxKxHxW).max(axis=(1, 2, 3), keepdims=True)
    scale_Gx1x1x1 = 1.0 / (peak_Gx1x1x1 + HP_EPS)
    return (lap_GxKxHxW * scale_Gx1x1x1).reshape(lap_NxHxWx1.shape[:3])
  return jnp.mean(jnp.abs(normalised(fake) - normalised(real)), axis=(1, 2))


@jax.jit
def _ssim_8bit(fake: jax.Array, real: jax.Array) -> jax.Array:
  return _ssim(_quantise(fake) / 255.0, _quantise(real) / 255.0, 1.0)


@jax.jit
def _psnr_8bit(fake: jax.Array, real: jax.Array) -> jax.Array:
  # On integer levels, so identical 8-bit images give mse 0 and +inf exactly.
  return 20.0 * jnp.log10(255.0) - 10.0 * jnp.log10(dm_pix.mse(_quantise(fake), _quantise(real)))


@jax.jit
def _l1_8bit(fake: jax.Array, real: jax.Array) -> jax.Array:
  return jnp.mean(jnp.abs(_quantise(fake) - _quantise(real)), axis=(1, 2, 3))


@jax.jit
def _hp_l1(fake: jax.Array, real: jax.Array) -> jax.Array:
  lap_fake = _laplacian(_quantise(fake), "8", "VALID")
  lap_real = _laplacian(_quantise(real), "8", "VALID")
  return jnp.mean(jnp.abs(lap_fake - lap_real), axis=(1, 2, 3))


def seed_l1(fake: np.ndarray, real: np.ndarray) -> np.ndarray:
  """Seed L1: per-image mean |fake - real| in [-1, 1] units."""
  return _chunked(_seed_l1, *_check_pair(fake, real))


def seed_psnr(fake: np.ndarray, real: np.ndarray) -> np.ndarray:
  """Seed PSNR (tf.image.psnr, max_val 2) in dB per image; +inf for identical images."""
  return _chunked(_seed_psnr, *_check_pair(fake, real))


def seed_ssim(fake: np.ndarray, real: np.ndarray) -> np.ndarray:
  """Seed SSIM (tf.image.ssim, max_val 2, on [-1, 1]) per image."""
  return _chunked(_seed_ssim, *_check_pair(fake, real, SSIM_FILTER_SIZE))


def seed_hp_l1(fake: np.ndarray, real: np.ndarray, *, group: int | None = None,
               kernel: str = "8", padding: str = "SAME", absolute: bool = False) -> np.ndarray:
  """Seed HP-L1 per image; each `group` consecutive images (default all) share one max.

  The defaults are the seed's definition (module docstring); kernel ('8' or '4'), padding
  ('SAME' or 'VALID') and absolute (normalise |lap| instead of lap) select the variants that were
  tried during calibration.
  """
  fake, real = _check_pair(fake, real, 3)
  n = fake.shape[0]
  group = n if group is None else group
  if group < 1 or n % group:
    raise ValueError(f"seed_hp_l1 group={group} must divide the batch of {n} images "
                     f"(pass the patches of whole images, e.g. group=4 for the 4-tile grid).")
  if kernel not in LAPLACIANS or padding not in ("SAME", "VALID"):
    raise ValueError(f"seed_hp_l1 kernel={kernel!r} must be one of {tuple(LAPLACIANS)} and "
                     f"padding={padding!r} one of ('SAME', 'VALID').")
  if n == 0:
    return np.zeros((0,), np.float64)
  step = max(CHUNK_IMAGES // group, 1) * group
  parts = [np.asarray(_seed_hp_l1(fake[i:i + step], real[i:i + step], group=group,
                                  kernel=kernel, padding=padding, absolute=absolute))
           for i in range(0, n, step)]
  return np.concatenate(parts).astype(np.float64)


def l1_8bit(fake: np.ndarray, real: np.ndarray) -> np.ndarray:
  """Per-image mean |a - b| of the uint8-quantised images, in 8-bit levels."""
  return _chunked(_l1_8bit, *_check_pair(fake, real))


def psnr_8bit(fake: np.ndarray, real: np.ndarray) -> np.ndarray:
  """PSNR of the uint8-quantised images with peak 255, in dB; +inf for identical ones."""
  return _chunked(_psnr_8bit, *_check_pair(fake, real))


def ssim(fake: np.ndarray, real: np.ndarray) -> np.ndarray:
  """Standard SSIM of the uint8-quantised images on [0, 1], data range 1."""
  return _chunked(_ssim_8bit, *_check_pair(fake, real, SSIM_FILTER_SIZE))


def hp_l1(fake: np.ndarray, real: np.ndarray) -> np.ndarray:
  """Batch-independent HP-L1: mean |Laplacian difference| per channel, in 8-bit levels."""
  return _chunked(_hp_l1, *_check_pair(fake, real, 3))


def compute_metrics(fake: np.ndarray, real: np.ndarray, *,
                    hp_group: int | None = None) -> dict[str, np.ndarray]:
  """All eight metrics per image, keyed by METRIC_NAMES; hp_group as seed_hp_l1's group."""
  fake, real = _check_pair(fake, real, SSIM_FILTER_SIZE)  # once, for all eight
  kernels = {"seed/l1": _seed_l1, "seed/psnr": _seed_psnr, "seed/ssim": _seed_ssim,
             "l1_8bit": _l1_8bit, "psnr_8bit": _psnr_8bit, "ssim": _ssim_8bit, "hp_l1": _hp_l1}
  return {name: (seed_hp_l1(fake, real, group=hp_group) if name == "seed/hp_l1"
                 else _chunked(kernels[name], fake, real)) for name in METRIC_NAMES}


def summarize(values: np.ndarray) -> dict[str, float]:
  """Mean, min, max, population std and count of per-image values (NaN stats when empty)."""
  values = np.asarray(values, np.float64).reshape(-1)
  if values.size == 0:
    return {"mean": float("nan"), "min": float("nan"), "max": float("nan"),
            "std": float("nan"), "n": 0}
  return {"mean": float(values.mean()), "min": float(values.min()),
          "max": float(values.max()), "std": float(values.std()), "n": int(values.size)}
