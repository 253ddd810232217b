"""python -m p2p.evaluate: protocols, baselines, FID/KID plumbing, and every report file."""

import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from p2p.config import DataConfig
from p2p.eval.protocols import Pairs, baseline, load_pairs, make_examples, training_means

ROOT = Path(__file__).resolve().parents[1]
SOURCES = {"model", "mean_color", "mean_photo", "input"}
METRICS = {"seed/l1", "seed/psnr", "seed/ssim", "seed/hp_l1", "l1_8bit", "psnr_8bit", "ssim",
           "hp_l1"}


def evaluate(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
  return subprocess.run([sys.executable, "-m", "p2p.evaluate", *args], cwd=ROOT,
                        capture_output=True, text=True, timeout=600,
                        env={**os.environ, **(env or {})})


@pytest.fixture(scope="module")
def report(tiny_run, tmp_path_factory):
  """All three protocols, all baselines, no FID: the report folder and the --json copy."""
  out = tmp_path_factory.mktemp("eval")
  result = evaluate(f"--workdir={tiny_run}", "--protocol=patches,resize,full", "--nofid",
                    f"--out={out}", f"--json={out / 'copy.json'}")
  assert result.returncode == 0, result.stderr
  return out, result.stdout


@pytest.mark.slow
def test_json_has_every_protocol_source_and_statistic(report):
  out, _ = report
  summary = json.loads((out / "metrics.json").read_text())
  assert summary == json.loads((out / "copy.json").read_text())
  assert set(summary["protocols"]) == {"patches", "resize", "full"}
  # 3 val pairs of 64 px halves, 32 px model: 4 patches each, or 3 whole images.
  assert [summary["protocols"][p]["n"] for p in ("patches", "resize", "full")] == [12, 3, 3]
  for protocol in summary["protocols"].values():
    assert set(protocol["sources"]) == SOURCES
    for source in protocol["sources"].values():
      assert set(source) == METRICS
      for stats in source.values():
        assert set(stats) == {"mean", "min", "max", "std", "n"}
        assert stats["min"] <= stats["mean"] <= stats["max"]
  assert summary["meta"]["n_pairs"] == 3 and summary["meta"]["fid_weights"] == "off"


@pytest.mark.slow
def test_table_csv_and_grids(report):
  out, stdout = report
  for word in ("patches: 12 examples", "mean_color", "mean_photo", "PSNR 8b"):
    assert word in stdout
  rows = list(csv.DictReader((out / "per_image.csv").open()))
  assert len(rows) == (12 + 3 + 3) * 4
  assert METRICS <= set(rows[0])
  for protocol, side in (("patches", 32), ("resize", 32), ("full", 64)):
    width, height = Image.open(out / f"samples_{protocol}.png").size
    assert height > 3 * side and width > 3 * side


@pytest.mark.slow
def test_gallery_links_exist_and_worst_comes_first(report):
  out, _ = report
  page = (out / "index.html").read_text()
  sources = re.findall(r'<img src="([^"]+)"', page)
  assert len(sources) == 3 * (12 + 3 + 3)
  assert all((out / s).is_file() and not s.startswith("/") for s in sources)
  patches = page.split("<h2>patches")[1].split("<h2>")[0]
  values = [float(v) for v in re.findall(r"seed/l1: ([0-9.]+)", patches)]
  assert len(values) == 12 and values == sorted(values, reverse=True)


@pytest.mark.slow
def test_fid_and_kid_with_random_weights(tiny_run, tmp_path):
  result = evaluate(f"--workdir={tiny_run}", "--protocol=resize", "--baseline=mean_color,input",
                    "--fid_weights=random:0", f"--out={tmp_path}")
  assert result.returncode == 0, result.stderr
  sources = json.loads((tmp_path / "metrics.json").read_text())["protocols"]["resize"]["sources"]
  assert set(sources) == {"model", "mean_color", "input"}
  for source in sources.values():
    assert np.isfinite(source["fid"]) and source["fid"] >= 0
    assert set(source["kid"]) == {"mean", "std", "n"} and source["kid"]["n"] == 3


@pytest.mark.slow
def test_missing_fid_weights_is_one_clear_error(tiny_run, tmp_path):
  result = evaluate(f"--workdir={tiny_run}", "--protocol=resize", f"--out={tmp_path}",
                    env={"P2P_FID_WEIGHTS": "", "XDG_CACHE_HOME": str(tmp_path / "cache")})
  assert result.returncode != 0
  assert "p2p-fid fetch" in result.stderr and "--nofid" in result.stderr
  assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_protocol_and_size_default_to_how_the_run_was_trained(tiny_run, tmp_path):
  """tiny_run trained on whole halves resized to 32 px: scored by `resize` at 32, nothing else."""
  result = evaluate(f"--workdir={tiny_run}", "--nofid", "--baseline=none", f"--out={tmp_path}")
  assert result.returncode == 0, result.stderr
  summary = json.loads((tmp_path / "metrics.json").read_text())
  assert list(summary["protocols"]) == ["resize"] and summary["meta"]["image_size"] == 32
  assert summary["meta"]["protocols"] == ["resize"]


@pytest.mark.slow
def test_unknown_protocol_is_named(tiny_run, tmp_path):
  result = evaluate(f"--workdir={tiny_run}", "--protocol=tiles", "--nofid", f"--out={tmp_path}")
  assert result.returncode != 0 and "['tiles']" in result.stderr


@pytest.mark.slow
def test_image_size_scores_larger_tiles_with_the_trained_net(tiny_run, tmp_path):
  """A 32 px run scored on the 64 px halves: one tile per pair, the model's own depth."""
  result = evaluate(f"--workdir={tiny_run}", "--protocol=patches", "--baseline=none", "--nofid",
                    "--image_size=64", f"--out={tmp_path}")
  assert result.returncode == 0, result.stderr
  summary = json.loads((tmp_path / "metrics.json").read_text())
  assert summary["meta"]["image_size"] == 64 and summary["protocols"]["patches"]["n"] == 3
  generated = sorted((tmp_path / "images" / "patches").glob("*_generated.*"))
  assert len(generated) == 3 and Image.open(generated[0]).size == (64, 64)


@pytest.mark.slow
def test_an_earlier_step_gets_its_own_report_folder(tiny_run):
  """--step=N without --out writes RUN/eval_step_N, so the newest step's RUN/eval stays."""
  result = evaluate(f"--workdir={tiny_run}", "--step=4", "--protocol=resize", "--baseline=none",
                    "--nofid")
  assert result.returncode == 0, result.stderr
  summary = json.loads((tiny_run / "eval_step_4" / "metrics.json").read_text())
  assert summary["meta"]["step"] == 4
  assert "eval_step_4" in result.stdout


@pytest.mark.slow
def test_image_size_the_net_cannot_take_is_one_clear_error(tiny_run, tmp_path):
  result = evaluate(f"--workdir={tiny_run}", "--nofid", "--image_size=48", f"--out={tmp_path}")
  assert result.returncode != 0 and "Traceback" not in result.stderr
  assert "--image_size=48" in result.stderr and "multiple of 32" in result.stderr


def hand_made_pairs(tmp_path: Path) -> Path:
  """train: two pairs with constant photos (10, 20, 30) and (30, 40, 50); val: one pair."""
  root = tmp_path / "data"
  for split, colours in (("train", [(10, 20, 30), (30, 40, 50)]), ("val", [(0, 0, 0)])):
    (root / split).mkdir(parents=True)
    for i, colour in enumerate(colours):
      photo = np.full((64, 64, 3), colour, np.uint8)
      map_ = np.random.default_rng(i).integers(0, 256, (64, 64, 3), dtype=np.uint8)
      Image.fromarray(np.concatenate([photo, map_], 1)).save(root / split / f"{i + 1}.png")
  return root


def test_baselines_by_hand(tmp_path):
  root = hand_made_pairs(tmp_path)
  data = DataConfig(data_dir=str(root), direction="map_to_satellite")
  colour, photo = training_means(data, 64)
  np.testing.assert_allclose(colour, [20, 30, 40])
  assert photo.shape == (64, 64, 3)
  pairs = load_pairs(data, "val")
  examples = make_examples("patches", pairs, 32)
  assert examples.inputs.shape == (4, 32, 32, 3) and examples.group == 4
  assert (baseline("mean_color", examples, pairs, (colour, photo)) == [20, 30, 40]).all()
  np.testing.assert_array_equal(baseline("input", examples, pairs, (colour, photo)),
                                examples.inputs)
  gradient = np.arange(64 * 64 * 3, dtype=np.float64).reshape(64, 64, 3) % 251
  per_patch = baseline("mean_photo", examples, pairs, (colour, gradient))
  np.testing.assert_array_equal(per_patch[3], np.rint(gradient[32:, 32:]).astype(np.uint8))


def test_patch_examples_follow_the_seed_grid():
  pairs = Pairs(["a", "b"], np.zeros((2, 600, 600, 3), np.uint8),
                np.zeros((2, 600, 600, 3), np.uint8))
  examples = make_examples("patches", pairs, 256)
  assert examples.names == ["a#0", "a#1", "a#2", "a#3", "b#0", "b#1", "b#2", "b#3"]
  assert examples.inputs.shape == (8, 256, 256, 3)
  assert make_examples("resize", pairs, 256).inputs.shape == (2, 256, 256, 3)
  assert make_examples("full", pairs, 256).inputs.shape == (2, 600, 600, 3)
