"""python -m p2p.translate on own data: 16-bit and N-band images, floats, GeoTIFFs, --format."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile

from p2p.data.io import default_suffix, read_image, write_image

ROOT = Path(__file__).resolve().parents[1]
# ModelPixelScale, ModelTiepoint, GeoKeyDirectory, GeoAsciiParams: a UTM zone 32N raster.
GEOTAGS = [(33550, 12, 3, (10.0, 10.0, 0.0), True),
           (33922, 12, 6, (0.0, 0.0, 0.0, 500000.0, 5300000.0, 0.0), True),
           (34735, 3, 16, (1, 1, 0, 3, 1024, 0, 1, 1, 1025, 0, 1, 1, 3072, 0, 1, 32632), True),
           (34737, 2, 0, "WGS 84 / UTM zone 32N|", True)]


def translate(*args: str) -> subprocess.CompletedProcess:
  return subprocess.run([sys.executable, "-m", "p2p.translate", *args], cwd=ROOT,
                        capture_output=True, text=True, timeout=300)


def smooth(rng: np.random.Generator, shape: tuple[int, ...], hi: float, dtype: str) -> np.ndarray:
  """A smooth random H x W x C image in [0, hi] (upsampled 8x noise)."""
  base = rng.uniform(0, hi, (shape[0] // 8 + 1, shape[1] // 8 + 1, shape[2]))
  return np.kron(base, np.ones((8, 8, 1)))[:shape[0], :shape[1]].astype(dtype)


def train_run(root: Path, a: tuple[str, int, float, str], b: tuple[str, int, float, str]) -> Path:
  """A 2-step tiny AtoB run on 6 folder pairs of 40x48 px; a, b: (suffix, channels, max, dtype)."""
  from p2p import config as base
  from p2p.config import train_config
  from p2p.train.loop import train_and_evaluate
  rng = np.random.default_rng(0)
  for i in range(6):
    for side, (suffix, channels, hi, dtype) in (("A", a), ("B", b)):
      write_image(root / "data" / "train" / side / f"{i}{suffix}",
                  smooth(rng, (40, 48, channels), hi, dtype))
  c = base.tiny(base.default_config())
  c.data.data_dir, c.data.direction, c.data.val_fraction = str(root / "data"), "AtoB", 0.3
  c.max_steps = 2
  train_and_evaluate(train_config(c), root / "run", progress=False)
  return root / "run"


@pytest.fixture(scope="module")
def gray16_run(tmp_path_factory) -> Path:
  """16-bit gray PNG A -> 4-band uint16 TIFF B."""
  return train_run(tmp_path_factory.mktemp("gray16"), (".png", 1, 65535, "uint16"),
                   (".tif", 4, 65535, "uint16"))


@pytest.fixture(scope="module")
def float_run(tmp_path_factory) -> Path:
  """3-band float32 .npy A in [0, 1] -> 1-band float32 TIFF B."""
  return train_run(tmp_path_factory.mktemp("float"), (".npy", 3, 1.0, "float32"),
                   (".tif", 1, 1.0, "float32"))


@pytest.fixture(scope="module")
def gray16_inputs(tmp_path_factory) -> Path:
  """A non-square 16-bit gray PNG and a 1-band uint16 GeoTIFF."""
  folder = tmp_path_factory.mktemp("gray16_inputs")
  rng = np.random.default_rng(1)
  write_image(folder / "scan.png", smooth(rng, (45, 70, 1), 65535, "uint16"))
  tifffile.imwrite(folder / "geo.tif", smooth(rng, (36, 52, 1), 65535, "uint16")[..., 0],
                   extratags=GEOTAGS)
  return folder


def tag_values(path: Path) -> dict[int, object]:
  """The georeferencing tags of a TIFF, by code."""
  with tifffile.TiffFile(path) as tif:
    return {t.code: t.value for t in tif.pages[0].tags.values()
            if t.code in {g[0] for g in GEOTAGS}}


@pytest.fixture(scope="module")
def gray16_out(gray16_run, gray16_inputs, tmp_path_factory
               ) -> tuple[Path, subprocess.CompletedProcess]:
  """The gray16 inputs translated as a folder in the default format (one process for two tests)."""
  out = tmp_path_factory.mktemp("gray16_out")
  return out, translate(f"--workdir={gray16_run}", f"--input={gray16_inputs}", f"--output={out}")


@pytest.mark.slow
def test_16bit_gray_png_to_4band_uint16_in_the_targets_format(gray16_out):
  out, result = gray16_out
  assert result.returncode == 0, result.stderr
  scan = f"scan{default_suffix(4, 'uint16')}"  # the target's own format (not the input's)
  assert sorted(p.name for p in out.iterdir()) == sorted(["geo.tif", scan])
  image = read_image(out / scan)
  assert image.shape == (45, 70, 4) and image.dtype == np.uint16
  assert image.std() > 0


@pytest.mark.slow
def test_geotiff_input_keeps_its_georeferencing(gray16_out, gray16_inputs):
  out, result = gray16_out
  assert result.returncode == 0, result.stderr
  assert read_image(out / "geo.tif").shape == (36, 52, 4)
  tags = tag_values(out / "geo.tif")
  assert tags == tag_values(gray16_inputs / "geo.tif")
  assert tags[33550] == (10.0, 10.0, 0.0) and tags[34735][-1] == 32632
  assert tags[34737] == "WGS 84 / UTM zone 32N|"


@pytest.mark.slow
def test_forced_formats_and_a_suffix_that_cannot_hold_the_target(gray16_run, gray16_inputs,
                                                                  tmp_path):
  result = translate(f"--workdir={gray16_run}", f"--input={gray16_inputs}",
                     f"--output={tmp_path / 'png'}", "--format=png")
  assert result.returncode == 0, result.stderr
  assert "geo.tif is georeferenced but" in result.stderr and "dropped" in result.stderr
  assert result.stderr.count("georeferencing is dropped") == 1
  image = read_image(tmp_path / "png" / "geo.png")
  assert image.shape == (36, 52, 4) and image.dtype == np.uint16
  result = translate(f"--workdir={gray16_run}", f"--input={gray16_inputs / 'geo.tif'}",
                     f"--output={tmp_path / 'npy'}", "--format=npy")
  assert result.returncode == 0, result.stderr
  array = np.load(tmp_path / "npy" / "geo.npy")
  assert array.shape == (36, 52, 4) and array.dtype == np.uint16
  result = translate(f"--workdir={gray16_run}", f"--input={gray16_inputs / 'scan.png'}",
                     f"--output={tmp_path / 'scan.jpg'}")
  assert result.returncode != 0 and "Traceback" not in result.stderr
  assert "a 4-channel uint16 image cannot be saved as .jpg" in result.stderr
  assert not (tmp_path / "scan.jpg").exists()


@pytest.mark.slow
def test_float_npy_in_float_tiff_out_and_an_unadaptable_input(float_run, tmp_path):
  folder = tmp_path / "in"
  rng = np.random.default_rng(2)
  write_image(folder / "a.npy", smooth(rng, (30, 41, 3), 1.0, "float32"))
  write_image(folder / "two_band.png", smooth(rng, (32, 32, 2), 255, "uint8"))
  result = translate(f"--workdir={float_run}", f"--input={folder}", f"--output={tmp_path / 'o'}")
  assert result.returncode != 0 and "Traceback" not in result.stderr
  assert "two_band.png has 2 channel(s) but this run's model takes 3" in result.stderr
  assert "1 of 2 inputs could not be translated" in result.stderr
  assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["a.tif"]
  image = read_image(tmp_path / "o" / "a.tif")
  assert image.shape == (30, 41, 1) and image.dtype == np.float32
  assert 0.0 <= image.min() and image.max() <= 1.0
