"""Sample values <-> the model's [-1, 1]: the dtype's range by default, or a range the user sets.

    to_unit(x, (lo, hi)) = (x - lo) / ((hi - lo) / 2) - 1     (float32; uint8 0..255 gives
                                                                 x / 127.5 - 1 bit for bit)
    from_unit(y, (lo, hi), dtype) = (y + 1) (hi - lo) / 2 + lo, rounded and clipped for integers
"""

from __future__ import annotations

import decimal
from collections.abc import Sequence

import numpy as np

from p2p.data.errors import DataError

FLOAT_RANGE = (0.0, 1.0)  # float images without data.a_range/b_range: reflectances in [0, 1]


def default_range(dtype: str | np.dtype) -> tuple[float, float]:
  """An integer dtype's full range (uint8: 0..255, uint16: 0..65535); floats: 0..1."""
  dtype = np.dtype(dtype)
  if np.issubdtype(dtype, np.integer):
    info = np.iinfo(dtype)
    return float(info.min), float(info.max)
  return FLOAT_RANGE


def value_range(dtype: str | np.dtype, given: Sequence[float] = ()) -> tuple[float, float]:
  """The range a side's values are scaled from: `given` (data.a_range/b_range) or the default."""
  if len(given) == 0:
    return default_range(dtype)
  lo, hi = (float(v) for v in given)
  return lo, hi


def to_unit(image: np.ndarray, value_range: Sequence[float], clip: bool = False) -> np.ndarray:
  """Samples in value_range -> float32 in [-1, 1] (clipped there if asked), in one new array."""
  lo, hi = (float(v) for v in value_range)
  out = np.array(image, np.float32)  # the one allocation: the steps below work in place
  if lo:
    out -= lo
  out /= (hi - lo) / 2
  out -= 1.0
  return np.clip(out, -1.0, 1.0, out=out) if clip else out


def cast(values: np.ndarray, dtype: str | np.dtype) -> np.ndarray:
  """Float samples as `dtype`: rounded and clipped to its range for integers."""
  dtype = np.dtype(dtype)
  if np.issubdtype(dtype, np.integer):
    info = np.iinfo(dtype)
    return np.clip(np.rint(values), info.min, info.max).astype(dtype)
  return np.asarray(values).astype(dtype)


def to_8bit(image: np.ndarray, value_range: Sequence[float]) -> np.ndarray:
  """Samples as uint8: the 8-bit quantisation of their [-1, 1] scaling (8-bit data as it is)."""
  if image.dtype == np.uint8 and tuple(float(v) for v in value_range) == (0.0, 255.0):
    return image
  from p2p.data.images import to_uint8
  return to_uint8(to_unit(image, value_range))


def from_unit(image: np.ndarray, value_range: Sequence[float], dtype: str | np.dtype
              ) -> np.ndarray:
  """float [-1, 1] -> samples in value_range as `dtype` (integers rounded, both clipped)."""
  lo, hi = (float(v) for v in value_range)
  dtype = np.dtype(dtype)
  if dtype == np.uint8 and (lo, hi) == (0.0, 255.0):  # the 8-bit path, exactly as before
    from p2p.data.images import to_uint8
    return to_uint8(image)
  values = (np.asarray(image, np.float64) + 1.0) * ((hi - lo) / 2) + lo
  if np.issubdtype(dtype, np.integer):
    info = np.iinfo(dtype)
    values = np.rint(values)
    lo, hi = max(lo, info.min), min(hi, info.max)
  return np.clip(values, lo, hi).astype(dtype)


def range_text(lo_hi: Sequence[float]) -> str:
  """'(lo, hi)' for --config.data.x_range=: short decimals, rounded outward (within 0.1%)."""
  def bound(value: float, up: bool) -> str:
    if float(value).is_integer():
      return str(int(value))
    exact, rounding = decimal.Decimal(repr(float(value))), "ROUND_CEILING" if up else "ROUND_FLOOR"
    for digits in range(1, 18):
      step = decimal.Decimal(1).scaleb(exact.adjusted() - digits + 1)
      text = format(exact.quantize(step, rounding).normalize(), "f")
      if abs(float(text) - value) <= 1e-3 * abs(value):
        return text
    return repr(float(value))
  return f"({bound(lo_hi[0], False)}, {bound(lo_hi[1], True)})"


def check_values(image: np.ndarray, value_range: Sequence[float], path: object,
                 field: str) -> None:
  """DataError naming the file and the field when samples fall outside the range (or are NaN)."""
  lo, hi = (float(v) for v in value_range)
  low, high = float(np.min(image)), float(np.max(image))
  if np.isnan(low) or np.isnan(high):
    raise DataError(f"{path} holds NaN values; replace them (e.g. with the nodata value) or "
                    f"remove the file.")
  if low < lo or high > hi:
    raise DataError(f"{path} has values in [{low:g}, {high:g}], outside the range [{lo:g}, "
                    f"{hi:g}] they are scaled from; set {field}={range_text((low, high))} or "
                    f"the sensor's range (`p2p-inspect` finds the whole dataset's) so that they "
                    f"map into [-1, 1].")
