"""Own data end to end, every layout and every format: inspect, a tiny training run, translate,
evaluate, and the value scaling undone exactly (real files, 32 px crops, ngf 8)."""

import json

import numpy as np
import pytest
from own_data import FORMATS, write

import p2p
from p2p.config import default_config, tiny, train_config
from p2p.data.folder import load_pair, scan_split
from p2p.data.inspect import main as inspect_main
from p2p.data.io import default_suffix, read_image, write_image
from p2p.data.pipeline import eval_dataset, make_split
from p2p.data.values import from_unit
from p2p.eval.protocols import evaluate, load_pairs, training_means
from p2p.train.loop import train_and_evaluate

DIRS = ("sar/{split}", "optical/{split}_tiles")  # explicit: folders named as the user has them
LAYOUTS = {"side_by_side": {}, "folders": {"val_fraction": 0.4},
           "explicit": {"a_dir": DIRS[0], "b_dir": DIRS[1]}}


def _dataset(tmp_path, layout, fmt):
  splits = {"train": 6} if layout == "folders" else {"train": 5, "val": 2}  # folders: hold-out
  return write(tmp_path / "data", layout, fmt, splits, dirs=DIRS)


def _train(root, workdir, layout):
  c = tiny(default_config())
  c.data.data_dir, c.data.direction = str(root), "AtoB"
  for name, value in LAYOUTS[layout].items():
    setattr(c.data, name, value)
  c.max_steps, c.eval_examples, c.num_sample_images = 2, 1, 1
  return train_and_evaluate(train_config(c), workdir, progress=False)


# Layouts decide which files pair up, formats how each file decodes: the two are independent,
# so each format runs under two layouts and each layout with two or three formats (8 of 12).
CASES = [("side_by_side", "jpeg_rgb8"), ("side_by_side", "png_gray16"),
         ("side_by_side", "tif_4band16"), ("folders", "png_gray16"), ("folders", "npy_float32"),
         ("explicit", "jpeg_rgb8"), ("explicit", "tif_4band16"), ("explicit", "npy_float32")]


@pytest.mark.slow
@pytest.mark.parametrize("layout, fmt", CASES, ids=[f"{l}-{f}" for l, f in CASES])
def test_inspect_train_translate_evaluate(tmp_path, capsys, layout, fmt):
  suffix, channels, dtype, _ = FORMATS[fmt]
  root = _dataset(tmp_path, layout, fmt)
  flags = [f"--{k}={v}" for k, v in LAYOUTS[layout].items()]
  found = tmp_path / "inspect.json"
  assert inspect_main([str(root), "--patch_size=32", "--direction=AtoB", f"--json={found}",
                       *flags]) == 0, capsys.readouterr().out
  assert json.loads(found.read_text())["layout"]["kind"] == layout

  result = _train(root, tmp_path / "run", layout)
  assert result.step == 2 and all(np.isfinite(l1) for _, l1 in result.val_l1)
  gen = p2p.load(tmp_path / "run")
  data = gen.data
  assert (data.layout, data.a_channels, data.b_channels, data.a_dtype, data.b_dtype) == (
      layout, channels, channels, np.dtype(dtype).name, np.dtype(dtype).name)
  assert data.val_source == ("holdout" if layout == "folders" else "folder")

  # The pipeline's [-1, 1] targets map back onto the file's samples (to 1 LSB; floats ~1e-7).
  scan = scan_split(data, "val")
  split = make_split(data, "val", equal_shards=False, scan=scan)
  batch = next(iter(eval_dataset(data, split, batch_size=1)))
  _, b = load_pair(scan.pairs[0])
  _, top, left = split.regions[0]
  native = b[top:top + 32, left:left + 32]
  back = from_unit(batch["target"][0], data.b_range, data.b_dtype)
  assert back.dtype == native.dtype
  if np.issubdtype(native.dtype, np.integer):
    assert np.abs(back.astype(np.int64) - native).max() <= 1
  else:
    np.testing.assert_allclose(back, native, atol=1e-6)

  # Translate at native size (non-square for folder layouts); the output is the target's kind.
  a, b = load_pair(scan.pairs[0])
  out = p2p.translate_image(gen, a)
  assert out.shape == b.shape and out.dtype == b.dtype
  path = tmp_path / f"out{default_suffix(out.shape[-1], out.dtype.name)}"
  write_image(path, out)
  np.testing.assert_array_equal(read_image(path), out)

  # Evaluate: pixel metrics on the split the run recorded (a hold-out for folders).
  pairs = load_pairs(data, "val")
  results = evaluate(gen, pairs, protocols=["patches", "full"], baselines=["mean_color"],
                     means=training_means(data, 32))
  for protocol in ("patches", "full"):
    summary = results[protocol]["sources"]["model"]["summary"]
    assert np.isfinite(summary["l1_8bit"]["mean"]) and np.isfinite(summary["ssim"]["mean"])
