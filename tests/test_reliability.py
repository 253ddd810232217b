"""Damaged and mismatched runs: checkpoints the test truncates or corrupts itself, incompatible
resumes, non-finite losses, one-line CLI errors, and the chaos harness (real kills)."""

import json
import logging
import os
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

import p2p
from p2p.config import ConfigError
from p2p.data import synthetic
from p2p.data.io import write_image
from p2p.train.checkpoint import CheckpointError, Checkpointer
from p2p.train.loop import NonFiniteLoss, train_and_evaluate
from tests.test_train import assert_trees_equal, final_params, make_config

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def maps(tmp_path_factory) -> Path:
  """Synthetic maps with 64 px halves: 6 train, 2 val pairs (3 steps per epoch at batch 2)."""
  return synthetic.write_dataset(tmp_path_factory.mktemp("data") / "maps", train=6, val=2,
                                 seed=0, size=64)


def run_config(maps: Path, **overrides):
  """4 epochs of 3 steps, a checkpoint after each: the newest three are 6, 9 and 12."""
  return make_config(maps, **{"num_epochs": 4, "checkpoint_every_epochs": 1, **overrides})


@pytest.fixture(scope="module")
def run(maps, tmp_path_factory) -> Path:
  """A finished run, never damaged: tests damage copies of it."""
  workdir = tmp_path_factory.mktemp("run") / "run"
  train_and_evaluate(run_config(maps), workdir, progress=False)
  assert Checkpointer(workdir).all_steps() == [6, 9, 12]
  return workdir


def copy(run: Path, tmp_path: Path, name: str = "run") -> Path:
  return Path(shutil.copytree(run, tmp_path / name))


def array_files(workdir: Path, step: int) -> list[Path]:
  """The files holding a checkpoint's array data, largest first."""
  files = (workdir / "checkpoints" / str(step) / "state").rglob("ocdbt.process_0/d/*")
  return sorted((p for p in files if p.is_file()), key=lambda p: -p.stat().st_size)


def truncate(workdir: Path, step: int) -> None:
  """Cuts the checkpoint's largest array file to half (a full disk, an interrupted copy)."""
  path = array_files(workdir, step)[0]
  os.truncate(path, path.stat().st_size // 2)


def flip(path: Path, fraction: float, n: int = 4096) -> None:
  """Inverts n bytes of a file from `fraction` of its length on."""
  data = bytearray(path.read_bytes())
  start = int(len(data) * fraction)
  data[start:start + n] = bytes(b ^ 0xFF for b in data[start:start + n])
  path.write_bytes(bytes(data))


def test_truncated_newest_checkpoint_is_skipped_by_load_and_named(run, tmp_path, caplog):
  workdir = copy(run, tmp_path)
  truncate(workdir, 12)
  with caplog.at_level(logging.WARNING):
    gen = p2p.load(workdir)
  assert gen.step == 9
  assert "Checkpoint 12 is damaged (unreadable" in caplog.text
  assert "Using checkpoint 9 (the newest intact one)" in caplog.text
  assert Checkpointer(workdir).all_steps() == [6, 9, 12]  # readers leave the folder as it is
  with pytest.raises(CheckpointError, match=r"checkpoint 12 is damaged .*pick another step"):
    p2p.load(workdir, step=12)


def test_wrong_values_fail_the_checksums(run, tmp_path, caplog):
  """Arrays that decode but differ from what was saved: another step's state under step 12."""
  workdir = copy(run, tmp_path)
  twelve = workdir / "checkpoints" / "12" / "state"
  shutil.rmtree(twelve)
  shutil.copytree(workdir / "checkpoints" / "9" / "state", twelve)
  with caplog.at_level(logging.WARNING):
    assert p2p.load(workdir).step == 9
  assert "Checkpoint 12 is damaged (" in caplog.text and "fail their checksum" in caplog.text


@pytest.mark.parametrize("fraction", [0.05, 0.35, 0.65, 0.95])
def test_flipped_bytes_never_pass(run, tmp_path, fraction, caplog):
  """4 KiB of inverted bytes: unreadable, or readable with other values (then the checksums
  catch it); either way the damaged step is never used."""
  workdir = copy(run, tmp_path)
  flip(array_files(workdir, 12)[0], fraction)
  with caplog.at_level(logging.WARNING):
    assert p2p.load(workdir).step == 9
  assert "Checkpoint 12 is damaged" in caplog.text


def test_resume_moves_a_damaged_checkpoint_aside_and_matches_the_straight_run(maps, run,
                                                                              tmp_path, caplog):
  workdir = copy(run, tmp_path)
  truncate(workdir, 12)
  with caplog.at_level(logging.WARNING):
    result = train_and_evaluate(run_config(maps), workdir, progress=False)
  assert result.step == 12
  assert (workdir / "checkpoints" / "corrupt" / "12" / "state").is_dir()
  assert "moved it to" in caplog.text and "corrupt/12" in caplog.text
  config = run_config(maps)
  resumed, position = final_params(config, workdir)
  straight, straight_position = final_params(config, run)
  assert_trees_equal(resumed, straight)  # steps 10-12 again, from 9's data position
  assert position == straight_position
  rows = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
  assert [r["step"] for r in rows if "l1_loss" in r] == list(range(1, 13))


def test_no_intact_checkpoint_is_one_error_and_never_a_fresh_start(maps, run, tmp_path):
  workdir = copy(run, tmp_path)
  for step in (6, 9, 12):
    truncate(workdir, step)
  for _ in range(2):  # the second time, all of them are in corrupt/ already
    with pytest.raises(CheckpointError, match=r"No intact checkpoint in .*damaged"):
      train_and_evaluate(run_config(maps), workdir, progress=False)
  assert sorted((workdir / "checkpoints" / "corrupt").iterdir()) == [
      workdir / "checkpoints" / "corrupt" / s for s in ("12", "6", "9")]
  with pytest.raises(CheckpointError, match="No intact checkpoint"):
    p2p.load(workdir)


def test_non_finite_loss_names_the_newest_verified_checkpoint(maps, tmp_path):
  """Checkpoint 6 is damaged while the run goes on; the loss then turns NaN at step 8: the
  message names step 3, and the resume it asks for starts there."""
  workdir = tmp_path / "run"

  def on_step(step: int) -> None:
    if step == 7:
      truncate(workdir, 6)
    if step == 8:
      raise NonFiniteLoss("Non-finite loss at step 8: {'l1_loss': nan}.")

  with pytest.raises(NonFiniteLoss, match=r"at step 8.*last good checkpoint is step 3 in "):
    train_and_evaluate(run_config(maps), workdir, on_step=on_step, progress=False)
  assert Checkpointer(workdir).all_steps() == [3]
  assert (workdir / "checkpoints" / "corrupt" / "6").is_dir()


def test_incompatible_resume_lists_each_changed_field(maps, run, tmp_path):
  workdir = copy(run, tmp_path)
  changed = run_config(maps, num_epochs=5, **{"model.ngf": 16, "optim.ema_decay": 0.9})
  with pytest.raises(ConfigError) as error:
    train_and_evaluate(changed, workdir, progress=False)
  text = str(error.value)
  assert "model.ngf: 8 -> 16; optim.ema_decay: 0.0 -> 0.9" in text
  assert "num_epochs" not in text  # a field that is safe to change is not blamed
  assert "new --workdir" in text and "the run's own config" in text
  assert Checkpointer(workdir).all_steps() == [6, 9, 12]  # refused before anything changed


def huge_png(path: Path, width: int, height: int) -> Path:
  """A PNG whose header says width x height, with almost no pixel data: refused before decoding
  (decoding would need width x height x 3 bytes)."""
  def chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
  path.write_bytes(b"\x89PNG\r\n\x1a\n"
                   + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
                   + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b""))
  return path


def cli(*args: str) -> subprocess.Popen:
  return subprocess.Popen([sys.executable, "-m", *args], cwd=ROOT, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE)


@pytest.mark.slow
def test_cli_expected_failures_are_one_line_and_exit_2(maps, run, tmp_path):
  """Each command's expected failures: one `error:` line on stderr, exit code 2, no traceback."""
  a_file = tmp_path / "file.txt"
  a_file.write_text("not a folder")
  image = huge_png(tmp_path / "huge.png", 30000, 30000)
  deep = tmp_path / "gray16.png"
  write_image(deep, np.full((64, 64, 1), 1000, np.uint16))
  (tmp_path / "empty").mkdir()
  train = ("p2p.main", "--config=configs/rf70_resize.py:tiny", f"--workdir={tmp_path / 'new'}")
  cases = {
      "empty_data": (cli(*train, f"--config.data.data_dir={tmp_path / 'empty'}"),
                     "does not exist (beside it: nothing)"),
      "string_for_int": (cli(*train, f"--config.data.data_dir={maps}",
                             "--config.model.ngf=abc"),
                         "--config.model.ngf=abc: invalid literal for int()"),
      "sixteen_bit": (cli("p2p.translate", f"--workdir={run}", f"--input={deep}",
                          f"--output={tmp_path / 'photo.png'}"),
                      f"error: {deep}: The image holds uint16 samples but this run was trained "
                      f"on uint8 inputs"),
      "incompatible": (cli("p2p.main", "--config=configs/rf70_resize.py:tiny",
                           f"--workdir={copy(run, tmp_path)}", f"--config.data.data_dir={maps}",
                           "--config.model.ngf=16"),
                       "Cannot resume"),
      "huge": (cli("p2p.translate", f"--workdir={run}", f"--input={image}",
                   f"--output={tmp_path / 'out.png'}"),
               "huge.png is 30000x30000 (900,000,000 pixels), over the limit of 268,435,456; "
               "pass a smaller image or raise --max_pixels."),
      "unwritable": (cli("p2p.translate", f"--workdir={run}", f"--input={image}",
                         f"--output={a_file / 'out.png'}"),
                     f"--output={a_file / 'out.png'} cannot be written: {a_file} is a file"),
      "eval_out": (cli("p2p.evaluate", f"--workdir={run}", f"--out={a_file / 'eval'}",
                       "--nofid"),
                   f"--out={a_file / 'eval'} cannot be written"),
      "missing_run": (cli("p2p.evaluate", f"--workdir={tmp_path / 'nothing'}", "--nofid"),
                      "holds no checkpoint; train first"),
      "missing_flag": (cli("p2p.translate", f"--workdir={run}"),
                       "error: --input and --output are required"),
  }
  damaged = copy(run, tmp_path, "damaged")
  truncate(damaged, 12)
  healed = cli("p2p.main", "--config=configs/rf70_resize.py:tiny", f"--workdir={damaged}",
               f"--config.data.data_dir={maps}", "--config.max_steps=0", "--config.batch_size=2",
               "--config.data.preprocess=resize", "--config.num_epochs=4",
               "--config.checkpoint_every_epochs=1", "--noprogress")
  _, err = healed.communicate(timeout=300)
  assert healed.returncode == 0, err[-3000:]
  assert "Checkpoint 12 is damaged (unreadable" in err and "corrupt/12" in err
  assert "Traceback" not in err and "Event loop is closed" not in err
  for name, (proc, message) in cases.items():
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 2, (name, err[-2000:])
    assert message in err, (name, err[-2000:])
    assert "Traceback" not in err, name
    assert len([line for line in err.splitlines() if line.startswith("error:")]) == 1, name
  assert not (tmp_path / "nothing").exists()  # a mistyped run folder is not created


@pytest.mark.slow
def test_chaos_kills_leave_the_run_bitwise_equal_to_an_uninterrupted_one(tmp_path):
  """benchmarks/chaos.py, short: 5 kills (SIGTERM and SIGKILL, one aimed at a save)."""
  out = subprocess.run(
      [sys.executable, "benchmarks/chaos.py", "--kills=5", "--sigkill_fraction=0.4",
       "--save_fraction=0.3", "--seed=3", "--epochs=3", "--max_delay=3", f"--dir={tmp_path}",
       "--json"],
      cwd=ROOT, capture_output=True, text=True, timeout=600)
  result = json.loads(out.stdout.strip().splitlines()[-1])
  assert out.returncode == 0 and result["ok"], out.stdout[-3000:]
  assert result["kills"] + result["finished_before_kill"] == 5
  assert result["sigkill"] >= 1 and result["sigterm"] >= 1
  assert result["during_save"] >= 1  # seed 3 aims a SIGKILL and two SIGTERMs at saves
  assert result["state_bitwise_equal"] and result["metrics_equal"]
  assert result["steps_logged"] == result["steps_expected"] == 12
  assert not result["steps_duplicated"] and not result["steps_missing"]
