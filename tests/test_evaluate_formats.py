"""p2p-evaluate on own data: any channel count and bit depth, hold-out val, mixed and
non-square sizes; metrics for 1 and 4 channels."""

import csv
import html
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from p2p.data.errors import DataError
from p2p.data.io import write_image
from p2p.data.layouts import in_holdout
from p2p.eval import metrics
from p2p.eval.protocols import (Pairs, baseline, make_examples, score, skip_reasons,
                                training_means)

HOLDOUT = 0.34  # data.val_fraction of the hold-out datasets
METRICS = set(metrics.METRIC_NAMES)
MIXED_VAL = [(40, 48), (64, 40), (48, 72)]  # (height, width): 1, 2 and 2 grid patches of 32 px


# ---- metrics for any channel count -------------------------------------------------------------

def _noisy_pair(channels: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
  rng = np.random.default_rng(seed)
  real = rng.uniform(-1, 1, (2, 32, 32, channels)).astype(np.float32)
  fake = np.clip(real + rng.normal(0, 0.3, real.shape), -1, 1).astype(np.float32)
  return fake, real


@pytest.mark.parametrize("channels", [1, 4])
def test_every_metric_takes_one_or_four_channels(channels):
  fake, real = _noisy_pair(channels)
  values = metrics.compute_metrics(fake, real, hp_group=1)
  assert set(values) == METRICS
  for name, v in values.items():
    assert v.shape == (2,) and np.isfinite(v).all(), name
  np.testing.assert_allclose(values["seed/l1"], np.abs(fake - real).mean(axis=(1, 2, 3)),
                             rtol=1e-5)
  mse = ((fake - real) ** 2).mean(axis=(1, 2, 3))
  np.testing.assert_allclose(values["seed/psnr"], 10 * np.log10(4 / mse), rtol=1e-4)
  same = metrics.compute_metrics(real, real)
  for name in ("seed/l1", "l1_8bit", "hp_l1"):
    np.testing.assert_allclose(same[name], 0.0, atol=1e-6)
  np.testing.assert_allclose(same["ssim"], 1.0, atol=1e-6)
  assert np.isposinf(same["psnr_8bit"]).all()


def test_four_channels_are_scored_band_by_band():
  """SSIM and the standard HP-L1 average over channels; the seed HP-L1 sums them first."""
  fake, real = _noisy_pair(4, seed=1)
  bands = [metrics.compute_metrics(fake[..., c:c + 1], real[..., c:c + 1]) for c in range(4)]
  whole = metrics.compute_metrics(fake, real)
  for name in ("seed/l1", "seed/ssim", "ssim", "l1_8bit", "hp_l1"):
    np.testing.assert_allclose(whole[name], np.mean([b[name] for b in bands], axis=0),
                               rtol=1e-4, err_msg=name)
  mean_band = metrics.seed_hp_l1(fake.mean(-1, keepdims=True), real.mean(-1, keepdims=True))
  np.testing.assert_allclose(whole["seed/hp_l1"], mean_band, rtol=1e-4)


# ---- protocols and baselines on native arrays ---------------------------------------------------

def _mixed_pairs(dtype: str = "uint16", channels: int = 3) -> Pairs:
  rng = np.random.default_rng(0)
  top = 65535 if dtype == "uint16" else 1.0
  images = [(rng.uniform(0, top, (h, w, channels))).astype(dtype) for h, w in MIXED_VAL]
  return Pairs(["a", "b", "c"], images, [top - im for im in images])


def test_each_image_is_cut_by_its_own_size():
  pairs = _mixed_pairs()
  patches = make_examples("patches", pairs, 32)
  assert patches.names == ["a#0", "b#0", "b#1", "c#0", "c#1"]
  assert patches.image_index.tolist() == [0, 1, 1, 2, 2] and patches.group == 0
  assert patches.inputs.shape == (5, 32, 32, 3) and patches.inputs.dtype == np.uint16
  np.testing.assert_array_equal(patches.targets[2], pairs.targets[1][32:64, :32])
  resized = make_examples("resize", pairs, 32)
  assert resized.inputs.shape == (3, 32, 32, 3) and resized.group == 1
  full = make_examples("full", pairs, 32)
  assert [im.shape[:2] for im in full.targets] == MIXED_VAL
  with pytest.raises(DataError, match="smaller than the 48 px patches"):
    make_examples("patches", pairs, 48)


def test_sixteen_bit_targets_are_scored_at_their_own_precision():
  """One 16-bit level of difference is seen (it would vanish at 8 bits)."""
  pairs = _mixed_pairs()
  examples = make_examples("full", pairs, 32)
  fake = [t + np.uint16(1) * (t < 65535) for t in examples.targets]
  result = score(fake, examples, None, (0.0, 65535.0))
  assert set(result["per_image"]) == METRICS
  assert (result["per_image"]["seed/l1"] > 0).all()
  assert (result["per_image"]["seed/l1"] < 3 / 65535).all()
  assert np.isfinite(result["per_image"]["seed/psnr"]).all()


def test_mean_baselines_keep_the_targets_dtype_and_sizes():
  pairs = _mixed_pairs()
  colour = np.array([1000.4, 20000.6, 65535.0])
  photo = np.broadcast_to(colour, (40, 48, 3)).astype(np.float64)
  examples = make_examples("full", pairs, 32)
  flat = baseline("mean_color", examples, pairs, (colour, photo))
  assert [im.shape[:2] for im in flat] == MIXED_VAL
  assert all(im.dtype == np.uint16 and (im == [1000, 20001, 65535]).all() for im in flat)
  patches = make_examples("patches", pairs, 32)
  mean_photo = baseline("mean_photo", patches, pairs, (colour, photo))
  assert mean_photo.shape == (5, 32, 32, 3) and mean_photo.dtype == np.uint16
  floats = _mixed_pairs("float32")
  assert baseline("mean_color", make_examples("resize", floats, 32), floats,
                  (colour / 1e5, photo / 1e5)).dtype == np.float32


def test_skip_reasons_name_channels_and_dtypes():
  pairs = _mixed_pairs(channels=2)
  reasons = skip_reasons(pairs, ["input", "mean_color"], fid=True)
  assert reasons["fid"].endswith("this run's target has 2 channels")
  assert "input" not in reasons  # same channels and dtype
  gray = Pairs(["a"], [np.zeros((40, 40, 1), np.uint8)], [np.zeros((40, 40, 3), np.uint16)])
  reasons = skip_reasons(gray, ["input"], fid=True)
  assert set(reasons) == {"input"} and "1 channel(s) of uint8" in reasons["input"]
  assert skip_reasons(gray, ["input"], fid=False) == reasons


# ---- p2p-evaluate on trained tiny runs ----------------------------------------------------------

def holdout_stems(n_train: int, n_val: int) -> list[str]:
  """Stems of which exactly n_val fall into the hold-out of HOLDOUT."""
  train, val = [], []
  for i in range(1000):
    (val if in_holdout(f"p{i}", HOLDOUT) else train).append(f"p{i}")
  return train[:n_train] + val[:n_val]


def smooth(rng: np.random.Generator, height: int, width: int, channels: int) -> np.ndarray:
  """Blocks of 8 px of uniform [0, 1) values."""
  base = rng.uniform(0, 1, (height // 8, width // 8, channels))
  return np.kron(base, np.ones((8, 8, 1)))


def train_tiny(root: Path, workdir: Path, **data) -> Path:
  """A 32 px, ngf 8 run of 2 steps on root, direction AtoB."""
  from p2p import config as base
  from p2p.config import train_config
  from p2p.train.loop import train_and_evaluate
  c = base.tiny(base.default_config())
  c.data.data_dir, c.data.direction, c.max_steps = str(root), "AtoB", 2
  for key, value in data.items():
    setattr(c.data, key, value)
  train_and_evaluate(train_config(c), workdir, progress=False)
  return workdir


def run_evaluate(capsys, out: Path, **flag_values) -> tuple[dict, str]:
  """p2p-evaluate as a user runs it (a process of its own): (metrics.json, printed text)."""
  del capsys
  args = [f"--out={out}"]
  for name, value in flag_values.items():
    if isinstance(value, bool):
      args.append(f"--{'' if value else 'no'}{name}")
    else:
      args.append(f"--{name}={','.join(value) if isinstance(value, list) else value}")
  result = subprocess.run([sys.executable, "-m", "p2p.evaluate", *args], capture_output=True,
                          text=True, timeout=300, cwd=Path(__file__).resolve().parents[1])
  assert result.returncode == 0, result.stderr[-3000:]
  return json.loads((out / "metrics.json").read_text()), result.stdout + result.stderr


@pytest.fixture(scope="module")
def gray16_to_bands(tmp_path_factory) -> Path:
  """16-bit gray PNG A -> 4-band uint16 TIFF B, 40x48, train/A + train/B only (hold-out val)."""
  root = tmp_path_factory.mktemp("gray16") / "data"
  rng = np.random.default_rng(0)
  for stem in holdout_stems(4, 2):
    a = np.rint(smooth(rng, 40, 48, 1) * 65535).astype(np.uint16)
    b = np.concatenate([65535 - a, a // 2, a, np.full_like(a, 1000)], axis=-1)
    write_image(root / "train" / "A" / f"{stem}.png", a)
    write_image(root / "train" / "B" / f"{stem}.tif", b)
  return train_tiny(root, root.parent / "run", val_fraction=HOLDOUT)


@pytest.fixture(scope="module")
def float_rgb(tmp_path_factory) -> Path:
  """float32 .npy RGB on both sides in [0, 1], 40x48, hold-out val."""
  root = tmp_path_factory.mktemp("float") / "data"
  rng = np.random.default_rng(1)
  for stem in holdout_stems(4, 2):
    a = smooth(rng, 40, 48, 3).astype(np.float32)
    write_image(root / "train" / "A" / f"{stem}.npy", a)
    write_image(root / "train" / "B" / f"{stem}.npy", (1 - a)[..., ::-1].copy())
  return train_tiny(root, root.parent / "run", val_fraction=HOLDOUT)


@pytest.fixture(scope="module")
def mixed_sizes(tmp_path_factory) -> Path:
  """8-bit RGB PNG pairs of different, non-square sizes in train/ and val/ (A, B folders)."""
  root = tmp_path_factory.mktemp("mixed") / "data"
  rng = np.random.default_rng(2)
  for split, sizes in (("train", [(40, 48), (48, 40), (56, 64), (40, 40)]), ("val", MIXED_VAL)):
    for i, (height, width) in enumerate(sizes):
      a = np.rint(smooth(rng, height, width, 3) * 255).astype(np.uint8)
      write_image(root / split / "A" / f"{i}.png", a)
      write_image(root / split / "B" / f"{i}.png", 255 - a)
  return train_tiny(root, root.parent / "run")


def test_sixteen_bit_gray_to_four_bands_skips_fid_and_input(gray16_to_bands, tmp_path, capsys):
  summary, printed = run_evaluate(capsys, tmp_path / "eval", workdir=str(gray16_to_bands),
                                  fid_weights="random:0", protocol=["patches", "resize"])
  meta = summary["meta"]
  assert (meta["layout"], meta["val_source"], meta["n_pairs"]) == ("folders", "holdout", 2)
  assert meta["input"] == {"channels": 1, "dtype": "uint16", "range": [0.0, 65535.0]}
  assert meta["target"] == {"channels": 4, "dtype": "uint16", "range": [0.0, 65535.0]}
  reason = "FID/KID need 3-channel (RGB) targets; this run's target has 4 channels"
  assert meta["fid_skipped"] == reason and meta["fid_weights"] == "skipped"
  assert "1 channel(s) of uint16" in meta["baselines_skipped"]["input"]
  for protocol in summary["protocols"].values():
    assert set(protocol["sources"]) == {"model", "mean_color", "mean_photo"}
    for source in protocol["sources"].values():
      assert set(source) == METRICS  # no fid, no kid
      assert all(np.isfinite(stats["mean"]) for stats in source.values())
  assert reason in printed and "Baseline input skipped" in printed
  page = (tmp_path / "eval" / "index.html").read_text()
  assert html.escape(reason) in page
  for name in re.findall(r'<img src="([^"]+)"', page)[:3]:
    assert Image.open(tmp_path / "eval" / name).mode == "RGB"
  assert Image.open(tmp_path / "eval" / "samples_patches.png").mode == "RGB"


def test_float_rgb_gets_fid_on_its_8bit_quantisation(float_rgb, tmp_path, capsys):
  summary, _ = run_evaluate(capsys, tmp_path / "eval", workdir=str(float_rgb),
                            fid_weights="random:0", baseline=["input"])
  meta = summary["meta"]
  assert meta["target"] == {"channels": 3, "dtype": "float32", "range": [0.0, 1.0]}
  assert "8-bit quantisation" in meta["fid_images"] and "fid_skipped" not in meta
  assert list(summary["protocols"]) == ["patches"]  # the run's preprocess
  sources = summary["protocols"]["patches"]["sources"]
  assert set(sources) == {"model", "input"}
  for source in sources.values():
    assert np.isfinite(source["fid"]) and source["fid"] >= 0 and source["kid"]["n"] == 2
    assert np.isfinite(source["seed/l1"]["mean"])


def test_mixed_non_square_sizes_under_every_protocol(mixed_sizes, tmp_path, capsys):
  out = tmp_path / "eval"
  summary, printed = run_evaluate(capsys, out, workdir=str(mixed_sizes), fid=False,
                                  protocol=["patches", "resize", "full"])
  assert summary["meta"]["val_source"] == "folder" and "Note:" not in printed
  assert [summary["protocols"][p]["n"] for p in ("patches", "resize", "full")] == [5, 3, 3]
  for protocol in summary["protocols"].values():
    assert set(protocol["sources"]) == {"model", "mean_color", "mean_photo", "input"}
    for source in protocol["sources"].values():
      assert all(np.isfinite(source[m]["mean"]) for m in METRICS if "psnr" not in m)
  rows = list(csv.DictReader((out / "per_image.csv").open()))
  assert len(rows) == (5 + 3 + 3) * 4
  full = sorted((out / "images" / "full").glob("*_generated.jpg"))
  assert sorted(Image.open(p).size[::-1] for p in full) == sorted(MIXED_VAL)
  width, height = Image.open(out / "samples_full.png").size
  assert width >= 3 * 72 and height >= 40 + 64 + 48


def test_training_means_of_non_square_targets(mixed_sizes):
  from p2p import load
  data = load(mixed_sizes).data
  colour, photo = training_means(data, (40, 48))
  assert photo.shape == (40, 48, 3) and colour.shape == (3,)
  assert ((0 <= colour) & (colour <= 255)).all()
