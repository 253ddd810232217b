"""Data parallelism: 4 fake CPU devices vs 1, device-count changes on resume, 2 processes, bf16."""

import json
import logging
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import jax
import numpy as np
import pytest

import p2p

from p2p import config as base
from p2p.config import train_config
from p2p.data import synthetic
from p2p.train.checkpoint import Checkpointer
from p2p.train.loop import train_and_evaluate

pytestmark = pytest.mark.slow  # multi-process and multi-device runs

ROOT = Path(__file__).resolve().parents[1]
FOUR_DEVICES = {"XLA_FLAGS": os.environ.get("XLA_FLAGS", "")  # conftest's flags, and:
                + " --xla_force_host_platform_device_count=4"}


def python(code: str, env: dict | None = None) -> str:
  """Runs code in a fresh interpreter (XLA_FLAGS must be set before jax starts); its stdout."""
  result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT,
                          capture_output=True, text=True, timeout=600,
                          env={**os.environ, **(env or {})})
  assert result.returncode == 0, result.stderr[-3000:]
  return result.stdout


@pytest.fixture(scope="module")
def maps(tmp_path_factory) -> Path:
  """Synthetic maps with 64 px halves: 8 train, 2 val pairs."""
  return synthetic.write_dataset(tmp_path_factory.mktemp("data") / "maps", train=8, val=2,
                                 seed=2, size=64)


def test_one_step_on_four_devices_equals_one_device():
  out = python("""
      import json, jax, numpy as np
      from p2p import config as base
      from p2p.train import parallel
      from p2p.config import train_config
      from p2p.train.state import build_networks, create_train_state
      from p2p.train.step import compile_step
      c = base.tiny(base.default_config()); c.batch_size = 4
      config = train_config(c)
      nets = build_networks(config, steps_per_epoch=10)
      rng = np.random.default_rng(0)
      x = rng.uniform(-1, 1, (4, 32, 32, 3)).astype(np.float32)
      batch = {"input": x, "target": np.tanh(2 * x[..., ::-1])}
      results = {}
      for n in (1, 4):
        mesh = parallel.make_mesh(jax.devices()[:n])
        step = compile_step(nets, config, mesh)
        state = create_train_state(nets, config, mesh)
        state, metrics = step(state, parallel.global_batch(batch, mesh))
        sharding = jax.tree.leaves(state)[0].sharding
        for _ in range(2):
          state, metrics = step(state, parallel.global_batch(batch, mesh))
        results[n] = (jax.tree.map(np.asarray, state), {k: float(v) for k, v in metrics.items()},
                      step._cache_size(), len(sharding.device_set))
      one, four = results[1], results[4]
      diff = max(float(np.abs(a - b).max() / (np.abs(a).max() + 1e-12))
                 for a, b in zip(jax.tree.leaves(one[0]), jax.tree.leaves(four[0])))
      print(json.dumps({"devices": jax.device_count(), "max_rel_diff": diff,
                        "metrics": [one[1], four[1]], "cache": [one[2], four[2]],
                        "state_devices": [one[3], four[3]]}))
      """, FOUR_DEVICES)
  got = json.loads(out.strip().splitlines()[-1])
  assert got["devices"] == 4 and got["state_devices"] == [1, 4]  # replicated on all four
  assert got["cache"] == [1, 1]  # three steps, one compilation each
  assert got["max_rel_diff"] < 1e-4  # BatchNorm and losses cover the global batch
  for k, v in got["metrics"][0].items():
    assert got["metrics"][1][k] == pytest.approx(v, rel=1e-4, abs=1e-6), k


def train_cli(workdir: Path, maps: Path, max_steps: int, env: dict | None = None) -> None:
  result = subprocess.run(
      [sys.executable, "-m", "p2p.main", "--config=configs/rf70_resize.py:tiny",
       f"--workdir={workdir}", f"--config.data.data_dir={maps}", "--config.batch_size=4",
       "--config.num_epochs=10", f"--config.max_steps={max_steps}", "--noprogress"],
      cwd=ROOT, capture_output=True, text=True, timeout=600, env={**os.environ, **(env or {})})
  assert result.returncode == 0, result.stderr[-3000:]


def restored_params(workdir: Path) -> list[np.ndarray]:
  """The generator's parameters in the newest checkpoint, through the public p2p.load."""
  return [np.asarray(x) for x in jax.tree.leaves(p2p.load(workdir).variables)]


@pytest.fixture(scope="module")
def straight_params(maps, tmp_path_factory) -> list[np.ndarray]:
  """G's variables (restored_params) after 6 steps on one device, with no interruption."""
  workdir = tmp_path_factory.mktemp("straight") / "run"
  train_cli(workdir, maps, 6)
  return restored_params(workdir)


def test_checkpoint_restores_on_another_device_count(maps, straight_params, tmp_path):
  """4 devices -> 1 -> 4: each resume reads a checkpoint another device count wrote."""
  for steps, env in ((2, FOUR_DEVICES), (4, {}), (6, FOUR_DEVICES)):
    train_cli(tmp_path / "run", maps, steps, env)
  assert Checkpointer(tmp_path / "run").all_steps() == [2, 4, 6]
  params = restored_params(tmp_path / "run")
  assert len(params) == len(straight_params)
  for a, b in zip(params, straight_params):
    np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-5)


def metric_steps(workdir: Path) -> list[int]:
  lines = (workdir / "metrics.jsonl").read_text().splitlines()
  rows = [json.loads(line) for line in lines if line.endswith("}")]  # one may be half-written
  return [r["step"] for r in rows if "l1_loss" in r]


def test_two_processes_survive_a_lost_peer_and_resume(maps, tmp_path):
  """Two processes on loopback; process 1 is SIGKILLed mid-run: process 0 stops within
  --peer_timeout naming it, and a relaunch resumes from the last complete checkpoint (each
  process's own data position) with every step logged exactly once."""
  workdir = tmp_path / "mp"
  command = ["bash", "launch/multiprocess_cpu.sh", "2", "configs/rf70_resize.py:tiny",
             str(workdir), f"--config.data.data_dir={maps}", "--config.batch_size=2",
             "--noprogress", "--peer_timeout=10", "--config.checkpoint_every_epochs=1",
             "--config.num_epochs=500"]  # 4 pairs per process at local batch 1: 4 steps/epoch
  log = tmp_path / "killed.log"
  with log.open("w") as out:
    run = subprocess.Popen([*command, "--config.max_steps=0"], cwd=ROOT, text=True, stdout=out,
                           stderr=subprocess.STDOUT)
  deadline = time.monotonic() + 300
  while (not (workdir / "metrics.jsonl").exists() or max(metric_steps(workdir), default=0) < 6
         ) and time.monotonic() < deadline and run.poll() is None:
    time.sleep(0.2)
  victim = subprocess.run(["pgrep", "-f", f"workdir={workdir} .*--process_id=1"],
                          capture_output=True, text=True).stdout.split()
  assert len(victim) == 1, (victim, log.read_text()[-3000:])
  os.kill(int(victim[0]), signal.SIGKILL)
  killed = time.monotonic()
  run.wait(timeout=120)
  assert time.monotonic() - killed < 40  # --peer_timeout=10, plus detection
  err = log.read_text()
  assert run.returncode != 0
  lost = re.search(r"error: lost process 1 of 2 .*last complete checkpoint \(step (\d+) now\)",
                   err)
  assert lost, err[-3000:]
  assert "launch: process 1 (pid " in err and "SIGKILL" in err
  resumed_from = int(lost.group(1))
  result = subprocess.run([*command, "--config.max_steps=12"], cwd=ROOT, capture_output=True,
                          text=True, timeout=600)
  assert result.returncode == 0, result.stderr[-3000:]
  assert f"at step {resumed_from}." in result.stderr and "Resumed from" in result.stderr
  assert Checkpointer(workdir).latest_step() == 12
  files = sorted(p.name for p in (workdir / "checkpoints" / "12" / "data").glob("*.json"))
  assert files == ["process_0-of-2.json", "process_1-of-2.json"]
  assert metric_steps(workdir) == list(range(2, 13, 2))  # process 0 writes alone, each once


def test_bfloat16_losses_track_float32(maps, tmp_path, monkeypatch, caplog):
  """bf16 (chosen by compute_dtype=auto on a CPU with AMX, timings mocked) learns as float32."""
  from p2p.hardware import CpuInfo
  from p2p.ops import autotune
  amx = CpuInfo("Intel(R) Xeon(R) Platinum 8480+", 2, "6/143/8",
                frozenset({"avx512f", "avx512_bf16", "amx_bf16"}))
  monkeypatch.delenv(autotune.PIN_ENV)
  monkeypatch.setattr(autotune, "_chosen", {})
  monkeypatch.setattr(autotune, "cpu_info", lambda: amx)
  monkeypatch.setattr(autotune, "time_convs", lambda: {"float32": 3.0, "bfloat16": 1.0})
  curves = {}
  for dtype in ("float32", "auto"):
    c = base.tiny(base.default_config())
    c.data.data_dir, c.data.preprocess, c.compute_dtype = str(maps), "resize", dtype
    c.batch_size, c.num_epochs, c.max_steps, c.log_every_steps = 2, 20, 0, 4
    c.eval_examples = c.num_sample_images = 1
    c.checkpoint_every_epochs = c.num_epochs  # one checkpoint, at the end
    with caplog.at_level(logging.INFO):
      train_and_evaluate(train_config(c), tmp_path / dtype, progress=False)
    rows = [json.loads(line) for line in (tmp_path / dtype / "metrics.jsonl").open()]
    curves[dtype] = np.array([r["l1_loss"] for r in rows if "l1_loss" in r])
  chosen = json.loads((tmp_path / "auto" / "autotune.json").read_text())["chosen"]
  assert (chosen["dtype"], chosen["path"], chosen["cpu"]) == ("bfloat16", "amx_bf16", amx.key)
  assert json.loads((tmp_path / "float32" / "autotune.json").read_text())["chosen"]["path"] == (
      "explicit")
  assert "compute_dtype: bfloat16 (auto: Intel(R) Xeon(R) Platinum 8480+ has AMX-BF16; bf16 " \
         "convs 3.00x float32's speed in the autotune, faster)" in caplog.text
  curves["bfloat16"] = curves.pop("auto")
  f32, bf16 = curves["float32"], curves["bfloat16"]
  assert len(f32) == len(bf16) == 20  # 80 steps, logged every 4
  assert f32[-5:].mean() < 0.8 * f32[:2].mean()  # the run learns...
  assert np.abs(bf16 - f32).max() < 0.1 * f32.max()  # ...and bf16 follows the same curve
  assert abs(bf16[-5:].mean() - f32[-5:].mean()) < 0.1 * f32[-5:].mean()
