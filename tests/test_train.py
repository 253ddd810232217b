"""The training loop: resume equals an uninterrupted run, preemption, checkpoints, writers."""

import json
import logging
import multiprocessing
import os
import shutil
import signal
from pathlib import Path

import jax
import numpy as np
import pytest

from p2p import config as base
from p2p.config import ConfigError, train_config
from p2p.data import synthetic
from p2p.data.errors import DataError
from p2p.train.checkpoint import Checkpointer
from p2p.train.loop import NonFiniteLoss, train_and_evaluate
from p2p.train.state import abstract_state, build_networks
from p2p.train.step import METRICS


@pytest.fixture(scope="module")
def maps(tmp_path_factory) -> Path:
  """Synthetic maps with 64 px halves: 6 train, 2 val pairs."""
  return synthetic.write_dataset(tmp_path_factory.mktemp("data") / "maps", train=6, val=2,
                                 seed=0, size=64)


def make_config(maps: Path, **overrides):
  """A tiny run: 32 px resize, ngf 8, batch 2 -> 3 steps per epoch."""
  c = base.tiny(base.default_config())
  c.data.data_dir = str(maps)
  c.data.preprocess = "resize"
  c.batch_size = 2
  c.num_epochs = 2
  c.max_steps = 0
  c.log_every_steps = 1
  for key, value in overrides.items():
    node = c
    *path, leaf = key.split(".")
    for part in path:
      node = node[part]
    node[leaf] = value
  return train_config(c)


def final_params(config, workdir: Path):
  """The newest checkpoint's state, restored as host numpy arrays."""
  nets = build_networks(config, steps_per_epoch=3)
  ckpt = Checkpointer(workdir)
  try:
    state, _ = ckpt.restore(abstract_state(nets, config.data.image_size))
    step = ckpt.latest_step()
  finally:
    ckpt.close()
  data_file = workdir / "checkpoints" / str(step) / "data" / "process_0-of-1.json"
  return jax.tree.map(np.asarray, state), json.loads(data_file.read_text())


def assert_trees_equal(a, b):
  leaves_a, leaves_b = jax.tree.leaves(a), jax.tree.leaves(b)
  assert len(leaves_a) == len(leaves_b)
  for x, y in zip(leaves_a, leaves_b):
    np.testing.assert_array_equal(x, y)


@pytest.fixture(scope="module")
def straight(maps, tmp_path_factory):
  """4 steps without interruption (one and a third epochs)."""
  config = make_config(maps, max_steps=4)
  workdir = tmp_path_factory.mktemp("straight")
  result = train_and_evaluate(config, workdir, progress=False)
  return config, workdir, result


def test_run_writes_checkpoint_metrics_curve_and_samples(straight):
  config, workdir, result = straight
  assert (result.step, result.reason, result.last_checkpoint) == (4, "max_steps", 4)
  rows = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
  losses = [r for r in rows if "l1_loss" in r]
  assert [r["step"] for r in losses] == [1, 2, 3, 4]
  assert set(METRICS) <= set(losses[-1])
  # Before training, at the end of epoch 1, and where the run stopped.
  assert [r["step"] for r in rows if "val_l1" in r] == [0, 3, 4]
  assert [round(v, 6) for _, v in result.val_l1] == [
      round(r["val_l1"], 6) for r in rows if "val_l1" in r]
  assert (workdir / "loss_curve.png").stat().st_size > 0
  samples = sorted(p.name for p in (workdir / "samples").iterdir())
  assert samples == [f"val_samples_{s:08d}.png" for s in (0, 3, 4)]
  assert Checkpointer(workdir).all_steps() == [1 * 3, 4]  # every epoch (config) and the end
  chosen = json.loads((workdir / "autotune.json").read_text())["chosen"]  # auto, pinned by tests
  assert (config.compute_dtype, chosen["dtype"], chosen["path"]) == ("auto", "float32", "pinned")


@pytest.mark.slow
def test_sigterm_then_resume_equals_uninterrupted_run(straight, maps, tmp_path, caplog):
  config, straight_dir, _ = straight
  workdir = tmp_path / "run"

  def preempt(step):
    if step == 2:
      signal.raise_signal(signal.SIGTERM)

  first = train_and_evaluate(config, workdir, on_step=preempt, progress=False)
  assert (first.step, first.reason, first.last_checkpoint) == (2, "preempted", 2)
  with caplog.at_level(logging.WARNING):
    resumed = train_and_evaluate(config, workdir, progress=False)
  assert (resumed.step, resumed.reason) == (4, "max_steps")
  assert "changed since the checkpoint" not in caplog.text  # the recorded data fields agree
  want, want_data = final_params(config, straight_dir)
  got, got_data = final_params(config, workdir)
  assert got_data == want_data
  assert_trees_equal(got, want)
  rows = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
  assert [r["step"] for r in rows if "l1_loss" in r] == [1, 2, 3, 4]  # no step lost or doubled


@pytest.mark.slow
def test_ema_run_resumes_exactly_trains_as_without_and_serves_the_average(straight, maps,
                                                                          tmp_path):
  """optim.ema_decay only adds an average: same raw weights, resumable, served by load()."""
  import p2p
  config = make_config(maps, max_steps=4, **{"optim.ema_decay": 0.5})

  def preempt(step):
    if step == 2:
      signal.raise_signal(signal.SIGTERM)

  assert train_and_evaluate(config, tmp_path / "a", on_step=preempt, progress=False).step == 2
  assert train_and_evaluate(config, tmp_path / "a", progress=False).step == 4
  assert train_and_evaluate(config, tmp_path / "b", progress=False).step == 4
  resumed, _ = final_params(config, tmp_path / "a")
  assert_trees_equal(resumed, final_params(config, tmp_path / "b")[0])
  plain, _ = final_params(straight[0], straight[1])
  assert plain.g_ema is None
  assert_trees_equal(resumed.replace(g_ema=None), plain)  # training itself is unchanged
  assert not np.allclose(resumed.g_ema["up_1"]["conv"]["kernel"],
                         resumed.g.params["up_1"]["conv"]["kernel"])
  with pytest.raises(ConfigError, match=r"Cannot resume .*\(optim.ema_decay: 0.5 -> 0.0\)\. "
                                        r"Either train in a new --workdir, or resume with"):
    train_and_evaluate(make_config(maps, max_steps=6), tmp_path / "a", progress=False)
  served, raw = p2p.load(tmp_path / "a"), p2p.load(tmp_path / "a", ema=False)
  assert served.ema and not raw.ema
  assert_trees_equal(served.variables["params"], resumed.g_ema)
  assert_trees_equal(raw.variables["params"], resumed.g.params)


def test_finished_run_is_not_trained_again(straight, maps, tmp_path):
  config, _, _ = straight
  result = train_and_evaluate(make_config(maps, num_epochs=1), tmp_path, progress=False)
  assert (result.step, result.reason) == (3, "finished")
  again = train_and_evaluate(make_config(maps, num_epochs=1), tmp_path, progress=False)
  assert (again.step, again.reason) == (3, "finished")


def test_keeps_the_newest_checkpoints(maps, tmp_path):
  config = make_config(maps, num_epochs=4, checkpoint_every_epochs=1, max_checkpoints_to_keep=2,
                       eval_examples=1, num_sample_images=1)
  train_and_evaluate(config, tmp_path, progress=False)
  assert Checkpointer(tmp_path).all_steps() == [9, 12]


@pytest.mark.slow
def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(maps, tmp_path):
  train_and_evaluate(make_config(maps, max_steps=2), tmp_path, progress=False)
  bad = make_config(maps, max_steps=4, **{"optim.l1_weight": float("nan")})
  with pytest.raises(NonFiniteLoss, match=r"Non-finite loss at step 3.*last good checkpoint is "
                                          r"step 2"):
    train_and_evaluate(bad, tmp_path, progress=False)
  assert Checkpointer(tmp_path).all_steps() == [2]


def test_wandb_offline_writes_a_local_run(maps, tmp_path):
  config = make_config(maps, max_steps=1, **{"wandb.mode": "offline"})
  train_and_evaluate(config, tmp_path, progress=False)
  runs = list((tmp_path / "wandb").glob("offline-run-*"))
  assert len(runs) == 1 and any(runs[0].rglob("*.wandb"))


@pytest.mark.slow
def test_an_error_mid_run_saves_progress_first(straight, maps, tmp_path):
  """A corrupt training image found mid-epoch: the steps before it are kept, then resumable."""
  _, straight_dir, _ = straight
  data = tmp_path / "maps"
  shutil.copytree(maps, data)
  bad = data / "train" / "4.jpg"
  good_bytes = bad.read_bytes()
  bad.write_bytes(good_bytes[:len(good_bytes) // 3])  # header intact, body cut
  config = make_config(data, max_steps=4, **{"data.verify_images": False,
                                             "checkpoint_every_epochs": 100})
  with pytest.raises(DataError, match="4.jpg"):
    train_and_evaluate(config, tmp_path / "run", progress=False)
  saved = Checkpointer(tmp_path / "run").latest_step()
  assert saved is not None and saved >= 1  # the shuffled order does not reach 4.jpg at once
  bad.write_bytes(good_bytes)
  result = train_and_evaluate(config, tmp_path / "run", progress=False)
  assert (result.step, result.reason) == (4, "max_steps")
  want, want_data = final_params(config, straight_dir)
  got, got_data = final_params(config, tmp_path / "run")
  assert got_data == want_data
  assert_trees_equal(got, want)


@pytest.mark.slow
def test_steps_per_call_equals_one_step_per_call(maps, tmp_path):
  """Two steps per call (lax.scan), with single steps at epoch ends: same run as one per call."""
  runs = {}
  for k in (1, 2):
    config = make_config(maps, steps_per_call=k)  # 2 epochs of 3 steps: calls of 2, 1, 2, 1
    result = train_and_evaluate(config, tmp_path / f"k{k}", progress=False)
    assert (result.step, result.reason) == (6, "finished")
    rows = [json.loads(line) for line in (tmp_path / f"k{k}" / "metrics.jsonl").read_text()
            .splitlines()]
    runs[k] = ([r for r in rows if "l1_loss" in r], final_params(config, tmp_path / f"k{k}"))
  (rows_1, (state_1, data_1)), (rows_2, (state_2, data_2)) = runs[1], runs[2]
  assert [r["step"] for r in rows_2] == [1, 2, 3, 4, 5, 6]
  for a, b in zip(rows_2, rows_1):
    np.testing.assert_allclose([a[m] for m in METRICS], [b[m] for m in METRICS], rtol=1e-4)
  assert data_2 == data_1
  for x, y in zip(jax.tree.leaves(state_2), jax.tree.leaves(state_1)):
    np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-6)


@pytest.mark.slow
def test_resident_data_run_resumes_exactly(maps, tmp_path):
  """data.resident (device-side jitter) with two steps per call: SIGTERM + resume = straight."""
  config = make_config(maps, steps_per_call=2, **{"data.resident": True})

  def preempt(step):
    if step == 2:
      signal.raise_signal(signal.SIGTERM)

  straight = train_and_evaluate(config, tmp_path / "straight", progress=False)
  first = train_and_evaluate(config, tmp_path / "run", on_step=preempt, progress=False)
  assert (straight.step, first.step, first.reason) == (6, 2, "preempted")
  assert train_and_evaluate(config, tmp_path / "run", progress=False).step == 6
  (want, want_data), (got, got_data) = (final_params(config, tmp_path / d)
                                        for d in ("straight", "run"))
  assert got_data == want_data == {"next_index": 6}
  assert_trees_equal(got, want)


@pytest.mark.slow
def test_sigterm_to_the_process_group_with_worker_processes(maps, tmp_path):
  """A group-wide SIGTERM (schedulers, `timeout`) also reaches Grain's workers: they must
  outlive it, so the main process stops at a step and saves instead of crashing on a read."""
  config = make_config(maps, **{"data.worker_count": 1})  # 6 steps

  def group_signal(step):
    if step == 1:  # the workers get theirs first; several batches are still to be read
      workers = multiprocessing.active_children()
      assert workers
      for worker in workers:
        os.kill(worker.pid, signal.SIGTERM)
        worker.join(timeout=2)
    if step == 4:
      signal.raise_signal(signal.SIGTERM)

  first = train_and_evaluate(config, tmp_path / "run", on_step=group_signal, progress=False)
  assert (first.step, first.reason, first.last_checkpoint) == (4, "preempted", 4)
  assert train_and_evaluate(config, tmp_path / "run", progress=False).reason == "finished"
  rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text()
          .splitlines()]
  assert [r["step"] for r in rows if "l1_loss" in r] == [1, 2, 3, 4, 5, 6]
