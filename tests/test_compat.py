"""Old runs keep working: a config.json written before the schema moved loads, runs and says why.

tests/data/legacy_run_config.json is the config.json of a run trained by the previous layout
(EMA, resize-conv, unconditional D, feature matching, an R1 penalty, and the kernel knobs still
under `model`); legacy_run_state_tree.json is that code's TrainState tree (path -> shape, dtype).
"""

import json
import logging
from pathlib import Path

import jax
import pytest

from p2p import compat
from p2p.config import ConfigError, default_config, tiny, train_config
from p2p.data import synthetic
from p2p.train.checkpoint import Checkpointer
from p2p.train.loop import train_and_evaluate
from p2p.train.state import abstract_state, build_networks

DATA = Path(__file__).resolve().parent / "data"


def legacy() -> dict:
  return json.loads((DATA / "legacy_run_config.json").read_text())


def test_old_config_upgrades_to_the_same_networks_and_state_tree(caplog):
  with caplog.at_level(logging.WARNING):
    config = train_config(compat.upgrade(legacy(), where="old_run"))
  assert config.kernels.winograd_min_tiles == 64  # moved from model.*
  assert config.model.upsample == "resize" and not config.model.d_conditional
  warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
  assert len(warnings) == 1 and "optim.r1_gamma=0.1" in warnings[0]
  assert "docs/experiments.md" in warnings[0] and "generator loads unchanged" in warnings[0]
  nets = build_networks(config, steps_per_epoch=1)
  tree = {jax.tree_util.keystr(k): [list(v.shape), str(v.dtype)]
          for k, v in jax.tree_util.tree_leaves_with_path(abstract_state(nets, 32))}
  assert tree == json.loads((DATA / "legacy_run_state_tree.json").read_text())


def test_upgrade_leaves_the_saved_dict_alone_and_drops_inert_removed_fields(caplog):
  saved = legacy()
  saved["optim"]["r1_gamma"] = 0.0
  before = json.dumps(saved, sort_keys=True)
  with caplog.at_level(logging.WARNING):
    upgraded = compat.upgrade(saved, resume=True)
  assert json.dumps(saved, sort_keys=True) == before
  assert not caplog.records  # nothing removed was in use: silent, and resumable
  for gone in ("r1_gamma", "r1_every", "d_augment", "l1_pool"):
    assert gone not in upgraded["optim"]
  assert "noise_layers" not in upgraded["model"]
  train_config(upgraded)


@pytest.mark.parametrize("section,field,value", [
    ("optim", "d_augment", "translation,cutout"), ("optim", "l1_pool", 4),
    ("optim", "gan_mode", "relativistic"), ("data", "patch_layout", "random")])
def test_removed_training_options_load_for_inference_and_refuse_resume(section, field, value,
                                                                        caplog):
  saved = legacy()
  saved["optim"]["r1_gamma"] = 0.0
  saved[section][field] = value
  with caplog.at_level(logging.WARNING):
    config = train_config(compat.upgrade(saved, where="old_run"))
  assert f"{section}.{field}={value!r}" in caplog.text
  assert config.optim.gan_mode in ("vanilla", "lsgan", "hinge")
  with pytest.raises(compat.RemovedOption, match="start a new --workdir"):
    compat.upgrade(saved, resume=True)


@pytest.mark.parametrize("section,field,value", [
    ("model", "noise_layers", 2), ("model", "g_norm", "pixel"), ("model", "norm", "pixel")])
def test_removed_generator_layers_give_one_clear_error(section, field, value):
  saved = legacy()
  saved[section][field] = value
  with pytest.raises(compat.RemovedOption, match=f"{section}.{field}={value!r}, a generator "
                                                  f"layer removed"):
    compat.upgrade(saved)


@pytest.mark.slow
def test_resuming_a_run_that_used_a_removed_option_is_refused(tmp_path):
  maps = synthetic.write_dataset(tmp_path / "maps", train=2, val=1, seed=0, size=64)
  c = tiny(default_config())
  c.data.data_dir, c.data.preprocess, c.max_steps = str(maps), "resize", 1
  config = train_config(c)
  assert train_and_evaluate(config, tmp_path / "run", progress=False).step == 1
  ckpt = Checkpointer(tmp_path / "run")
  saved = ckpt.read_config()
  ckpt.close()
  saved["optim"]["r1_gamma"] = 0.5  # as an old run's config.json would say
  (path,) = (tmp_path / "run" / "checkpoints").glob("*/config/metadata")
  path.write_text(json.dumps(saved))
  with pytest.raises(ConfigError, match=r"optim\.r1_gamma=0\.5.*Resuming training with it is "
                                        r"not possible"):
    train_and_evaluate(train_config({**c.to_dict(), "max_steps": 2}), tmp_path / "run",
                       progress=False)
