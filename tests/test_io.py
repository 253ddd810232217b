"""Image files of any channels and bit depth, and the value scaling that must round-trip."""

import numpy as np
import pytest
import tifffile

from p2p.data import DataError
from p2p.data.io import default_suffix, probe, read_geotags, read_image, write_image
from p2p.data.values import check_values, default_range, from_unit, to_unit, value_range

RNG = np.random.default_rng(0)
CASES = {  # name: (suffix, array)
    "rgb8_jpeg": (".jpg", np.broadcast_to(np.arange(30, dtype=np.uint8)[None, :, None] * 8,
                                          (20, 30, 3)).copy()),
    "rgb8_png": (".png", RNG.integers(0, 256, (20, 30, 3), dtype=np.uint8)),
    "gray8_png": (".png", RNG.integers(0, 256, (20, 30, 1), dtype=np.uint8)),
    "rgba8_png": (".png", RNG.integers(0, 256, (20, 30, 4), dtype=np.uint8)),
    "gray16_png": (".png", RNG.integers(0, 65536, (20, 30, 1), dtype=np.uint16)),
    "rgb16_png": (".png", RNG.integers(0, 65536, (20, 30, 3), dtype=np.uint16)),
    "bands4_u16_tif": (".tif", RNG.integers(0, 65536, (20, 30, 4), dtype=np.uint16)),
    "bands7_f32_tif": (".tif", RNG.random((20, 30, 7), dtype=np.float32)),
    "gray_i16_tif": (".tif", RNG.integers(-300, 300, (20, 30, 1), dtype=np.int16)),
    "f32_npy": (".npy", RNG.random((20, 30, 3), dtype=np.float32)),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_write_read_probe_round_trip(tmp_path, name):
  suffix, image = CASES[name]
  path = tmp_path / f"{name}{suffix}"
  write_image(path, image)
  back = read_image(path)
  assert back.shape == image.shape and back.dtype == image.dtype
  if suffix == ".jpg":
    assert np.abs(back.astype(int) - image).mean() < 3  # lossy, but the same image
  else:
    np.testing.assert_array_equal(back, image)
  info = probe(path)
  assert (info.height, info.width, info.channels, info.dtype) == (20, 30, image.shape[-1],
                                                                 image.dtype.name)


def test_planar_tiff_and_2d_npy_read_as_hwc(tmp_path):
  bands = RNG.integers(0, 4096, (5, 16, 24), dtype=np.uint16)  # bands first, as GDAL writes
  tifffile.imwrite(tmp_path / "planar.tif", bands, planarconfig="separate",
                   photometric="minisblack")
  image = read_image(tmp_path / "planar.tif")
  assert image.shape == (16, 24, 5)
  np.testing.assert_array_equal(image, np.moveaxis(bands, 0, -1))
  assert probe(tmp_path / "planar.tif").channels == 5
  np.save(tmp_path / "dem.npy", RNG.random((16, 24)).astype(np.float32))
  assert read_image(tmp_path / "dem.npy").shape == (16, 24, 1)


@pytest.mark.parametrize("content,match", [
    (b"", "is empty \\(0 bytes\\)"), (b"not an image at all", "is not a decodable image")])
@pytest.mark.parametrize("suffix", [".jpg", ".png", ".tif", ".npy"])
def test_bad_files_name_the_file_and_the_fix(tmp_path, suffix, content, match):
  path = tmp_path / f"bad{suffix}"
  path.write_bytes(content)
  for fn in (read_image, probe):
    with pytest.raises(DataError, match=f"{path} {match}.*Replace or delete the file"):
      fn(path)


def test_unsupported_suffix_and_format(tmp_path):
  (tmp_path / "x.gif").write_bytes(b"GIF89a")
  with pytest.raises(DataError, match="x.gif: p2p reads .jpg"):
    read_image(tmp_path / "x.gif")
  with pytest.raises(ValueError, match="4-channel uint16 image cannot be saved as .jpg.*.tif"):
    write_image(tmp_path / "y.jpg", np.zeros((4, 4, 4), np.uint16))
  assert default_suffix(3, "uint8") == default_suffix(1, "uint16") == ".png"
  assert default_suffix(4, "uint16") == default_suffix(3, "float32") == ".tif"


def test_geotiff_tags_survive_a_write(tmp_path):
  tags = [(33550, 12, 3, (10.0, 10.0, 0.0), True),
          (33922, 12, 6, (0.0, 0.0, 0.0, 440720.0, 3751320.0, 0.0), True),
          (34735, 3, 16, (1, 1, 0, 3, 1024, 0, 1, 1, 1025, 0, 1, 1, 3072, 0, 1, 32611), True),
          (34737, 2, 0, "WGS 84 / UTM zone 11N|", True)]
  tifffile.imwrite(tmp_path / "in.tif", np.zeros((8, 8, 2), np.uint16), extratags=tags,
                   planarconfig="contig", photometric="minisblack")
  read = read_geotags(tmp_path / "in.tif")
  assert {t[0] for t in read} == {33550, 33922, 34735, 34737}
  write_image(tmp_path / "out.tif", np.ones((8, 8, 4), np.uint16), geotags=read)
  with tifffile.TiffFile(tmp_path / "out.tif") as tif:
    got = {code: tif.pages[0].tags[code].value for code in (33550, 33922, 34735, 34737)}
  assert got[33550] == (10.0, 10.0, 0.0) and got[33922][3:5] == (440720.0, 3751320.0)
  assert tuple(got[34735]) == tags[2][3] and got[34737].startswith("WGS 84 / UTM zone 11N")
  assert read_geotags(tmp_path / "plain.png") == ()


@pytest.mark.parametrize("dtype,given", [
    ("uint8", ()), ("uint16", ()), ("uint16", (0, 4095)), ("int16", (-500, 500)),
    ("float32", ()), ("float32", (-0.2, 1.6))])
def test_scaling_round_trip_is_exact_to_one_lsb(dtype, given):
  lo, hi = value_range(dtype, given)
  if np.issubdtype(np.dtype(dtype), np.integer):
    values = np.arange(int(lo), int(hi) + 1, max(1, int(hi - lo) // 5000)).astype(dtype)
    values = np.concatenate([values, np.array([lo, hi], dtype)])
  else:
    values = np.linspace(lo, hi, 10001, dtype=dtype)
  unit = to_unit(values, (lo, hi))
  assert unit.dtype == np.float32
  np.testing.assert_allclose([unit.min(), unit.max()], [-1, 1], atol=1e-6)
  back = from_unit(unit, (lo, hi), dtype)
  assert back.dtype == np.dtype(dtype)
  if np.issubdtype(np.dtype(dtype), np.integer):
    np.testing.assert_array_equal(back, values)  # exact: within half an LSB before rounding
  else:
    np.testing.assert_allclose(back, values, atol=(hi - lo) * 2 ** -22)


def test_uint8_scaling_is_the_seed_formula_bit_for_bit():
  x = np.arange(256, dtype=np.uint8)
  np.testing.assert_array_equal(to_unit(x, default_range("uint8")),
                                x.astype(np.float32) / 127.5 - 1.0)


def test_values_outside_the_range_are_an_error_naming_the_field():
  with pytest.raises(DataError, match=r"f.npy has values in \[0, 3\].*data.a_range=\(0, 3\)"):
    check_values(np.array([0.0, 3.0], np.float32), (0.0, 1.0), "f.npy", "data.a_range")
  with pytest.raises(DataError, match="NaN"):
    check_values(np.array([np.nan], np.float32), (0.0, 1.0), "f.npy", "data.a_range")
