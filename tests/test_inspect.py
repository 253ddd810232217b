"""p2p-inspect on real files: every layout and format, hold-outs, and a named error per bad file."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import make_dataset
from own_data import FORMATS, H, W, image, write

from p2p.config import DataConfig
from p2p.data import DataError, scan_split
from p2p.data.inspect import main, range_text
from p2p.data.io import write_image
from p2p.data.layouts import in_holdout

SMALL = ("--patch_size=32",)  # the default 256 px crop is larger than these images


def inspect(tmp_path: Path, capsys, root: Path, *flags: str) -> tuple[int, dict, str]:
  """(exit code, JSON findings, stdout + stderr) of one in-process run."""
  out = tmp_path / "findings.json"
  code = main([str(root), *SMALL, f"--json={out}", *flags])
  captured = capsys.readouterr()
  return code, json.loads(out.read_text()) if out.exists() else {}, captured.out + captured.err


def fails_like_training(out: str, root: Path, named: Path, **fields) -> None:
  """out holds the one-line error training stops with, and that error names the file."""
  with pytest.raises(DataError) as error:
    scan_split(DataConfig(**{"data_dir": str(root), "patch_size": 32, **fields}), "train")
  assert f"error: {error.value}\n" in out and str(named) in str(error.value)
  assert "Traceback" not in out


LAYOUT_FLAGS = {"side_by_side": (), "folders": (),
                "explicit": ("--a_dir=A/{split}", "--b_dir=B/{split}")}


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("layout", LAYOUT_FLAGS)
def test_layouts_and_formats(tmp_path, capsys, layout, fmt):
  root = write(tmp_path / "data", layout, fmt, {"train": 4, "val": 3})
  code, found, out = inspect(tmp_path, capsys, root, *LAYOUT_FLAGS[layout])
  assert code == 0, out
  assert found["ok"] and found["error"] is None and "OK: training would start" in out
  assert found["layout"]["kind"] == layout and found["val_source"] == "folder"
  _, channels, dtype, (lo, hi) = FORMATS[fmt]
  for split, count in (("train", 4), ("val", 3)):
    facts = found["splits"][split]
    assert facts["pairs"] == count and not facts["bad"]
    assert facts["size"] == dict.fromkeys(("min", "median", "max"), [H, H if layout ==
                                                                     "side_by_side" else W])
    for side in "ab":
      assert (facts[side]["channels"], facts[side]["dtype"]) == (channels, np.dtype(dtype).name)
      assert facts[side]["decoded"] == count
      got = facts[side]["values"]
      if fmt == "jpeg_rgb8":  # lossy: near the ends
        assert got[0] <= 12 and got[1] >= 243
      else:
        assert got == [lo, hi]
  assert found["model"] == {"AtoB": {"input": channels, "output": channels},
                            "BtoA": {"input": channels, "output": channels}}
  assert f"--config.data.layout={layout}" in found["command"]
  if fmt == "png_gray16":  # 12 of 16 bits: the range is suggested, not required
    assert found["ranges"]["a"] == found["ranges"]["b"] == {
        "range": [0, 4095], "required": False, "why": found["ranges"]["a"]["why"]}
    assert "--config.data.a_range='(0, 4095)'" in found["command"] and "optional" in out
  else:
    assert found["ranges"] == {"a": None, "b": None} and "_range" not in found["command"]


def test_explicit_detected_command_and_direction(tmp_path, capsys):
  root = write(tmp_path / "data", "explicit", "tif_4band16", {"train": 3, "val": 3},
               b_fmt="jpeg_rgb8")
  code, found, out = inspect(tmp_path, capsys, root, "--direction=AtoB")  # A/train: detected
  assert code == 0, out
  assert found["layout"] == {"kind": "explicit", "a_dir": "A/{split}", "b_dir": "B/{split}"}
  assert found["model"] == {"AtoB": {"input": 4, "output": 3}, "BtoA": {"input": 3, "output": 4}}
  assert "--config.data.a_dir='A/{split}'" in found["command"]
  assert "--config.data.direction=AtoB" in found["command"] and "AtoB (chosen)" in out
  assert f"A = {root}/A/{{split}}" in out
  code, found, out = inspect(tmp_path, capsys, root, "--direction=map_to_satellite")
  assert code == 0 and "BtoA (chosen)" in out


def test_holdout_without_val(tmp_path, capsys):
  root = write(tmp_path / "data", "folders", "png_gray16", {"train": 8})
  held = [i for i in range(1, 9) if in_holdout(str(i), 0.5)]
  assert 0 < len(held) < 8  # the hash splits these stems
  code, found, out = inspect(tmp_path, capsys, root, "--val_fraction=0.5")
  assert code == 0, out
  assert found["val_source"] == "holdout" and found["splits"]["val"]["holdout"]
  assert found["splits"]["val"]["pairs"] == len(held)
  assert found["splits"]["train"]["pairs"] == 8 - len(held)  # cut from train, not shared
  assert "hold-out of 50% of train" in out and "--config.data.val_fraction=0.5" in out


def test_float_values_outside_unit_need_a_range(tmp_path, capsys):
  root = write(tmp_path / "data", "folders", "npy_float32", {"train": 3, "val": 3})
  bad = root / "train" / "B" / "2.npy"
  np.save(bad, np.linspace(-0.25, 1.5, H * W, dtype=np.float32).reshape(H, W, 1))
  code, found, out = inspect(tmp_path, capsys, root)
  assert code == 2 and "[-0.25, 1.5]" in out
  fails_like_training(out, root, bad)
  assert found["ranges"]["b"]["required"] and found["ranges"]["a"] is None
  assert "--config.data.b_range='(-0.25, 1.5)'" in found["command"]
  code, found, out = inspect(tmp_path, capsys, root, "--b_range=-0.25,1.5")
  assert code == 0, out


def test_unmatched_names_listed_per_side(tmp_path, capsys):
  root = write(tmp_path / "data", "folders", "png_gray16", {"train": 3, "val": 2})
  for name in ("x1.png", "x2.png"):
    write_image(root / "train" / "A" / name, image("png_gray16", 7))
  write_image(root / "train" / "B" / "y1.png", image("png_gray16", 8))
  code, found, out = inspect(tmp_path, capsys, root)
  assert code == 2 and found["splits"]["train"]["unmatched"] == {"a": ["x1.png", "x2.png"],
                                                                 "b": ["y1.png"]}
  assert "2 A file(s) without a partner: x1.png, x2.png" in out
  assert "1 B file(s) without a partner: y1.png" in out
  fails_like_training(out, root, root / "train" / "A")


def test_mixed_channels_named(tmp_path, capsys):
  root = write(tmp_path / "data", "folders", "png_gray16", {"train": 4, "val": 2})
  odd = root / "train" / "B" / "3.png"
  write_image(odd, np.repeat(image("png_gray16", 3), 3, axis=-1))
  code, found, out = inspect(tmp_path, capsys, root)
  assert code == 2 and found["splits"]["train"]["b"]["kinds"] == {"1 x uint16": 3,
                                                                  "3 x uint16": 1}
  fails_like_training(out, root, odd)


def test_size_mismatch_names_both_files(tmp_path, capsys):
  root = write(tmp_path / "data", "folders", "png_gray16", {"train": 3, "val": 2})
  write_image(root / "train" / "B" / "2.png", image("png_gray16", 2, (H, W + 2)))
  code, found, out = inspect(tmp_path, capsys, root)
  assert code == 2 and [b["pair"] for b in found["splits"]["train"]["bad"]] == ["2"]
  fails_like_training(out, root, root / "train" / "B" / "2.png")
  assert str(root / "train" / "A" / "2.png") in found["splits"]["train"]["bad"][0]["error"]


@pytest.mark.parametrize("content,why", [(b"this is not an image", "PNG"), (b"", "empty")])
def test_unreadable_files_each_listed(tmp_path, capsys, content, why):
  root = write(tmp_path / "data", "folders", "png_gray16", {"train": 4, "val": 2})
  bad = [root / "train" / "A" / "2.png", root / "train" / "B" / "4.png"]
  for path in bad:
    path.write_bytes(content)
  code, found, out = inspect(tmp_path, capsys, root)
  listed = found["splits"]["train"]["bad"]
  assert code == 2 and [b["pair"] for b in listed] == ["2", "4"]
  assert all(str(path) in b["error"] and why in b["error"] for path, b in zip(bad, listed))
  assert all(f"bad pair {b['pair']}: {b['error']}" in out for b in listed)
  fails_like_training(out, root, bad[0])
  code, found, out = inspect(tmp_path, capsys, root, "--skip_bad_files")  # training skips them
  assert code == 0 and len(found["splits"]["train"]["bad"]) == 2, out
  assert "--config.data.skip_bad_files=True" in found["command"]


def test_one_pixel_image(tmp_path, capsys):
  root = write(tmp_path / "data", "folders", "jpeg_rgb8", {"train": 2, "val": 2})
  for side in "AB":
    write_image(root / "train" / side / "3.jpg", np.zeros((1, 1, 3), np.uint8))
  code, found, out = inspect(tmp_path, capsys, root)
  assert code == 2 and "1x1" in out
  fails_like_training(out, root, root / "train" / "A" / "3.jpg")


@pytest.mark.parametrize("fields", [{"patch_size": 64},
                                    {"preprocess": "resize", "image_size": 64}])
def test_images_smaller_than_the_crop(tmp_path, capsys, fields):
  root = make_dataset(tmp_path / "maps", {"train": 3, "val": 2}, height=40)  # side-by-side JPEG
  code, found, out = inspect(tmp_path, capsys, root, *(f"--{k}={v}" for k, v in fields.items()))
  assert code == 2 and found["layout"]["kind"] == "side_by_side" and "64 px" in out
  assert len(found["splits"]["train"]["bad"]) == 3
  fails_like_training(out, root, root / "train" / "1.jpg", **fields)


def test_max_files_limits_decoding(tmp_path, capsys):
  root = write(tmp_path / "data", "side_by_side", "tif_4band16", {"train": 4, "val": 3})
  code, found, _ = inspect(tmp_path, capsys, root, "--max_files=1")
  assert code == 0 and [found["splits"][s]["a"]["decoded"] for s in ("train", "val")] == [1, 1]


@pytest.mark.parametrize("flags,message", [
    (("--layout=bogus",), "invalid choice: 'bogus'"),
    (("--a_range=5,1",), "error: data.a_range=(5.0, 1.0) must be"),
    (("--b_range=1,2,3",), "is not 'lo,hi'"),
    (("--val_fraction=1.5",), "error: data.val_fraction=1.5 must be in [0, 1)")])
def test_bad_flags_exit_2(tmp_path, capsys, flags, message):
  code, _, out = inspect(tmp_path, capsys, tmp_path, *flags)
  assert code == 2 and message in out and "Traceback" not in out


def test_missing_folder(tmp_path, capsys):
  code, found, out = inspect(tmp_path, capsys, tmp_path / "nope")
  assert code == 2 and not found["ok"]
  fails_like_training(out, tmp_path / "nope", tmp_path / "nope")


def test_range_text_rounds_outward():
  assert range_text((0, 4095)) == "(0, 4095)"
  assert range_text((-0.25, 1.5)) == "(-0.25, 1.5)"
  assert range_text((-0.9996759891, 1.999990344)) == "(-1, 2)"  # float32 noise
  assert range_text((-0.2500001, 4095.5)) == "(-0.2501, 4096)"


def test_module_entry_point_exit_code(tmp_path):
  root = make_dataset(tmp_path / "maps", {"train": 2, "val": 1}, height=40)
  (root / "train" / "2.jpg").write_bytes(b"garbage")
  run = subprocess.run([sys.executable, "-m", "p2p.data.inspect", str(root), *SMALL],
                       capture_output=True, text=True, timeout=120)
  assert run.returncode == 2, run.stderr
  fails_like_training(run.stderr, root, root / "train" / "2.jpg")
  assert "Traceback" not in run.stdout + run.stderr
  assert f"bad pair 2.jpg: {root / 'train' / '2.jpg'}" in run.stdout


def test_console_script(tmp_path):
  script = Path(sys.executable).parent / "p2p-inspect"
  if not script.exists():
    pytest.skip("p2p-inspect is not installed beside this python (pip install -e .)")
  root = write(tmp_path / "data", "folders", "png_gray16", {"train": 3})
  result = subprocess.run([str(script), str(root), *SMALL], capture_output=True, text=True,
                          timeout=120)
  assert result.returncode == 0, result.stderr
  assert "layout folders" in result.stdout and "hold-out" in result.stdout


def test_a_bad_val_split_warns_as_training_does(tmp_path, capsys):
  root = write(tmp_path / "data", "folders", "png_gray16", {"train": 3, "val": 2})
  (root / "val" / "A" / "1.png").write_bytes(b"")
  code, found, out = inspect(tmp_path, capsys, root)
  assert code == 0 and found["error"] is None  # training starts; it skips validation
  assert "warning: No validation examples" in out and "1.png is empty" in found["warning"]
