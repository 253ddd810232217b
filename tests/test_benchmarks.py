"""The benchmark harnesses run end to end and time the step of the config they are given."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from p2p.data import synthetic

pytestmark = pytest.mark.slow  # each harness runs in its own process, end to end

ROOT = Path(__file__).resolve().parents[1]


def test_epoch_times_loop_and_bare_step_of_the_same_config(tmp_path):
  """epoch.py's bare step is the loop's own step: cpu_maps' feature matching, not the default."""
  maps = synthetic.write_dataset(tmp_path / "maps", train=4, val=2, seed=0, size=64)
  out = subprocess.run(
      [sys.executable, "benchmarks/epoch.py", f"--data_dir={maps}",
       "--config=configs/cpu_maps.py:tiny", "--warmup=2", "--steps=4", "--json"],
      cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
  assert out.returncode == 0, out.stderr[-3000:]
  result = json.loads(out.stdout.strip().splitlines()[-1])
  assert result["benchmark"] == "epoch" and result["config"] == "configs/cpu_maps.py:tiny"
  assert (result["image_size"], result["ngf"], result["ndf"]) == (32, 8, 8)
  assert result["fm_weight"] == 40.0  # cpu_maps' loss, in the loop and in the bare step
  assert result["step_fm_weight"] == 40.0
  assert result["loop_steps_timed"] == 4
  assert result["loop_img_per_s"] > 0 and result["step_img_per_s"] > 0
  assert result["loop_fraction"] == round(result["loop_img_per_s"] / result["step_img_per_s"], 3)


def test_train_step_reports_the_step_it_was_asked_for():
  """train_step.py's flags reach the config: size, batch, widths, loss; FLOPs are counted."""
  out = subprocess.run(
      [sys.executable, "benchmarks/train_step.py", "--size=32", "--batch=2", "--ngf=8",
       "--ndf=4", "--fm_weight=10", "--warmup=1", "--steps=2", "--json"],
      cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
  assert out.returncode == 0, out.stderr[-3000:]
  result = json.loads(out.stdout.strip().splitlines()[-1])
  assert (result["size"], result["batch"], result["ngf"], result["ndf"]) == (32, 2, 8, 4)
  assert result["fm_weight"] == 10.0 and result["steps_timed"] == 2
  assert result["flops_per_step"] > 0 and result["img_per_s"] > 0
