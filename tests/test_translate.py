"""python -m p2p.translate on files and folders, real subprocesses."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from p2p.data import synthetic

ROOT = Path(__file__).resolve().parents[1]


def translate(*args: str) -> subprocess.CompletedProcess:
  return subprocess.run([sys.executable, "-m", "p2p.translate", *args], cwd=ROOT,
                        capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
  """A folder of maps in several modes and sizes, one pix2pix pair and one broken file."""
  folder = tmp_path_factory.mktemp("maps")
  pair = synthetic.render_pair(5, 48)
  Image.fromarray(pair[:, 48:]).save(folder / "rgb.jpg")
  Image.fromarray(pair[:, 48:]).convert("RGBA").save(folder / "rgba.png")
  Image.fromarray(pair[:, 48:]).convert("L").resize((70, 40)).save(folder / "gray.png")
  Image.fromarray(pair[:, 48:]).convert("P").resize((20, 20)).save(folder / "palette.png")
  return folder


@pytest.mark.slow
def test_folder_to_folder_keeps_sizes(tiny_run, inputs, tmp_path):
  out = tmp_path / "out"
  result = translate(f"--workdir={tiny_run}", f"--input={inputs}", f"--output={out}")
  assert result.returncode == 0, result.stderr
  sizes = {p.name: Image.open(p).size for p in out.iterdir()}
  assert sizes == {"rgb.png": (48, 48), "rgba.png": (48, 48), "gray.png": (70, 40),
                   "palette.png": (20, 20)}
  assert all(Image.open(p).mode == "RGB" for p in out.iterdir())


@pytest.mark.slow
def test_one_file_to_a_jpeg_and_a_pair(tiny_run, inputs, tmp_path):
  result = translate(f"--workdir={tiny_run}", f"--input={inputs / 'rgb.jpg'}",
                     f"--output={tmp_path / 'photo.jpg'}", "--norm=running", "--overlap=0")
  assert result.returncode == 0, result.stderr
  assert Image.open(tmp_path / "photo.jpg").size == (48, 48)
  pair = tmp_path / "pair.jpg"
  Image.fromarray(synthetic.render_pair(6, 40)).save(pair)
  result = translate(f"--workdir={tiny_run}", f"--input={pair}", f"--output={tmp_path}", "--pair")
  assert result.returncode == 0, result.stderr
  assert Image.open(tmp_path / "pair.png").size == (40, 40)


@pytest.mark.slow
def test_unreadable_files_are_named_and_the_rest_translated(tiny_run, inputs, tmp_path):
  folder = tmp_path / "in"
  folder.mkdir()
  (folder / "broken.png").write_bytes(b"not a png")
  Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(folder / "ok.png")
  result = translate(f"--workdir={tiny_run}", f"--input={folder}", f"--output={tmp_path / 'o'}")
  assert result.returncode != 0
  assert "broken.png is not a decodable image" in result.stderr
  assert "1 of 2 inputs could not be translated" in result.stderr
  assert "Traceback" not in result.stderr
  assert (tmp_path / "o" / "ok.png").exists()


@pytest.mark.slow
def test_missing_run_or_input(tmp_path, inputs, tiny_run):
  result = translate(f"--workdir={tmp_path}", f"--input={inputs}", f"--output={tmp_path}/o")
  assert result.returncode != 0 and "holds no checkpoint" in result.stderr
  result = translate(f"--workdir={tiny_run}", f"--input={tmp_path}/nothing.png",
                     f"--output={tmp_path}")
  assert result.returncode != 0 and "nothing.png does not exist" in result.stderr
  result = translate(f"--workdir={tiny_run}", f"--input={inputs}", f"--output={tmp_path}/x.png")
  assert result.returncode != 0 and "must be a folder" in result.stderr
  assert "Traceback" not in result.stderr


def test_the_cli_module_does_not_shadow_the_api():
  code = ("import p2p, p2p.translate; "
          "assert callable(p2p.sample) and callable(p2p.translate_image) and callable(p2p.load)")
  assert subprocess.run([sys.executable, "-c", code], cwd=ROOT).returncode == 0
