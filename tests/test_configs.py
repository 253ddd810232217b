"""Experiment configs: each is valid, each `:tiny` trains; the CLI names config mistakes."""

import importlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from configs import base
from p2p.checkpoint import Checkpointer
from p2p.config import ConfigError, train_config
from p2p.data import synthetic
from p2p.train import train_and_evaluate

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENTS = sorted(p.stem for p in (ROOT / "configs").glob("*.py")
                     if p.stem not in ("__init__", "base"))


def load(name: str, arg: str | None = None):
  module = importlib.import_module(f"configs.{name}")
  return module.get_config(arg) if arg else module.get_config()


@pytest.fixture(scope="module")
def maps128(tmp_path_factory) -> Path:
  """Synthetic maps with 128 px halves (room for RF 286's tiny size): 4 train, 1 val."""
  return synthetic.write_dataset(tmp_path_factory.mktemp("data") / "maps", train=4, val=1,
                                 seed=1, size=128)


def test_the_seed_experiments_and_the_demo_are_all_here():
  assert set(EXPERIMENTS) >= {"rf70_patches", "rf286_patches", "rf70_resize", "rf16_resize",
                              "b4_patches", "b10_patches", "demo"}


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_full_config_is_valid_and_documents_its_command(name):
  config = train_config(load(name))
  assert config.wandb.mode != "online"
  doc = importlib.import_module(f"configs.{name}").__doc__
  assert f"--config=configs/{name}.py" in doc


def test_seed_settings():
  rf70 = train_config(load("rf70_patches"))
  assert (rf70.batch_size, rf70.num_epochs, rf70.model.receptive_field) == (1, 200, 70)
  assert (rf70.data.preprocess, rf70.data.patch_layout) == ("patches", "grid")
  assert (rf70.optim.l1_weight, rf70.model.dropout_rate, rf70.data.load_size) == (100, 0.5, 286)
  assert rf70.data.direction == "map_to_satellite"
  assert train_config(load("rf286_patches")).model.receptive_field == 286
  assert train_config(load("rf70_resize")).num_epochs == 400
  assert train_config(load("rf16_resize")).model.receptive_field == 16
  assert train_config(load("b4_patches")).batch_size == 4
  assert train_config(load("b10_patches")).batch_size == 10


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_tiny_variant_trains_two_steps(name, maps128, tmp_path):
  config = load(name, "tiny")
  config.data.data_dir = str(maps128)
  config.num_epochs, config.max_steps = 10, 2  # 4 pairs are few epochs' worth of steps
  result = train_and_evaluate(train_config(config), tmp_path, progress=False)
  assert (result.step, result.last_checkpoint) == (2, 2)
  assert np.isfinite(result.val_l1[-1][1])


def test_unknown_config_argument_is_named():
  with pytest.raises(ValueError, match="'huge'.*'tiny'"):
    base.finish(base.get_config(), "huge")


def test_unknown_field_is_named():
  config = base.get_config()
  config.model.unlock()
  config.model.ngff = 8
  with pytest.raises(ConfigError, match=r"model\.ngff"):
    train_config(config)


@pytest.mark.parametrize("num_d, message", [
    (0, "model.num_d=0 must be > 0."),
    (5, "model.num_d=5 gives the coarsest discriminator 16 px inputs at data.image_size=256; "
        "receptive_field=70 needs >= 24."),
])
def test_discriminator_scales_are_checked(num_d, message):
  config = base.get_config()
  config.model.num_d = num_d
  with pytest.raises(ConfigError, match=re.escape(message)):
    train_config(config)
  config.model.num_d = 4  # the coarsest scale sees 32 px
  assert train_config(config).model.num_d == 4
  config.model.num_d = 2  # the smoke variant grows its images to keep two scales valid
  assert train_config(base.tiny(config)).data.image_size == 64


@pytest.mark.parametrize("pool, message", [
    (0, "optim.l1_pool=0 must be > 0."),
    (3, "optim.l1_pool=3 must divide data.image_size=256"),
])
def test_l1_pool_is_checked(pool, message):
  config = base.get_config()
  config.optim.l1_pool = pool
  with pytest.raises(ConfigError, match=re.escape(message)):
    train_config(config)
  config.optim.l1_pool = 4
  assert train_config(config).optim.l1_pool == 4


@pytest.mark.parametrize("field, value, message", [
    ("r1_gamma", -1.0, "optim.r1_gamma=-1.0 must be >= 0."),
    ("r1_every", 0, "optim.r1_every=0 must be > 0."),
])
def test_r1_settings_are_checked(field, value, message):
  config = base.get_config()
  config.optim[field] = value
  with pytest.raises(ConfigError, match=re.escape(message)):
    train_config(config)


def test_d_lr_scale_is_checked():
  config = base.get_config()
  config.optim.d_lr_scale = 0.0
  with pytest.raises(ConfigError, match=re.escape("optim.d_lr_scale=0.0 must be > 0")):
    train_config(config)


def test_g_norm_is_checked():
  config = base.get_config()
  config.model.g_norm = "group"
  with pytest.raises(ConfigError, match=re.escape("model.g_norm='group' is not one of")):
    train_config(config)


@pytest.mark.parametrize("upsample,impl,message", [
    ("bilinear", "phase", "model.upsample='bilinear'"),
    ("resize", "flax", "model.upsample='resize' runs as the phase transposed conv")])
def test_upsample_is_checked(upsample, impl, message):
  config = base.get_config()
  config.model.upsample, config.model.conv_transpose_impl = upsample, impl
  with pytest.raises(ConfigError, match=re.escape(message)):
    train_config(config)


def test_noise_layers_are_checked():
  config = base.get_config()
  config.model.noise_layers = -1
  with pytest.raises(ConfigError, match=re.escape("model.noise_layers=-1 must be >= 0")):
    train_config(config)


def test_winograd_min_tiles_is_checked():
  config = base.get_config()
  config.model.winograd_min_tiles = -1
  with pytest.raises(ConfigError, match=re.escape("model.winograd_min_tiles=-1 must be >= 0")):
    train_config(config)


@pytest.mark.parametrize("policy", ["flip", "color,color"])
def test_d_augment_policy_is_checked(policy):
  config = base.get_config()
  config.optim.d_augment = policy
  with pytest.raises(ConfigError, match=re.escape(f"optim.d_augment={policy!r}")):
    train_config(config)
  config.optim.d_augment = " translation, cutout "
  assert train_config(config).optim.d_augment == " translation, cutout "


def run_main(*args: str, cwd: Path = ROOT, **popen) -> subprocess.Popen:
  env = {**os.environ, "PYTHONUNBUFFERED": "1"}
  return subprocess.Popen([sys.executable, "-m", "p2p.main", *args], cwd=cwd, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)


@pytest.mark.parametrize("override, message", [
    ("--config.model.ngff=8", "--config.model.ngff: the config has no field 'ngff' "
                              "(did you mean 'ngf'?)"),
    ("--config.modle.ngf=8", "--config.modle.ngf: the config has no field 'modle' "
                             "(did you mean 'model'?)"),
    ("--config.model.norm=layer", "model.norm='layer' is not one of"),
    ("--config.optim.gan_weight=-1", "optim.gan_weight=-1.0 must be >= 0."),
])
def test_cli_config_mistakes_give_one_line(tmp_path, override, message):
  proc = run_main("--config=configs/demo.py:tiny", f"--workdir={tmp_path}", override)
  _, err = proc.communicate(timeout=120)
  assert proc.returncode != 0
  assert message in err
  assert "Traceback" not in err


def test_cli_missing_config_file(tmp_path):
  proc = run_main(f"--config={tmp_path}/nothere.py", f"--workdir={tmp_path}")
  _, err = proc.communicate(timeout=120)
  assert proc.returncode != 0 and "could not be loaded" in err and "nothere.py" in err
  assert "Traceback" not in err


def test_sigterm_at_random_moments_leaves_a_resumable_run(maps128, tmp_path):
  """SIGTERM twice, at moments that fall in start-up, compiling, training or saving; then the
  same command finishes the run with every step logged exactly once."""
  workdir = tmp_path / "run"
  args = [f"--config={ROOT}/configs/rf70_resize.py:tiny", f"--config.data.data_dir={maps128}",
          "--config.num_epochs=8", "--config.max_steps=0", "--config.checkpoint_every_epochs=1",
          "--config.log_every_steps=1", "--noprogress", f"--workdir={workdir}"]
  for delay in np.random.default_rng(0).uniform(1.0, 9.0, 2):  # a whole run takes ~8 s
    proc = run_main(*args, cwd=tmp_path)  # from another folder: configs/ must still import
    time.sleep(delay)
    proc.send_signal(signal.SIGTERM)
    code = proc.wait(timeout=300)
    assert code in (0, -signal.SIGTERM), proc.stderr.read()
  proc = run_main(*args, cwd=tmp_path)
  assert proc.wait(timeout=300) == 0, proc.stderr.read()
  assert Checkpointer(workdir).latest_step() == 32  # 4 pairs x 8 epochs at batch 1
  rows = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
  assert [r["step"] for r in rows if "l1_loss" in r] == list(range(1, 33))


def test_runs_share_a_persistent_compilation_cache(maps128, tmp_path):
  env = {k: v for k, v in os.environ.items() if k != "JAX_COMPILATION_CACHE_DIR"}
  cache = tmp_path / "cache"
  result = subprocess.run(
      [sys.executable, "-m", "p2p.main", "--config=configs/demo.py:tiny", f"--workdir={tmp_path}",
       f"--config.data.data_dir={maps128}", "--config.max_steps=1",
       f"--compilation_cache_dir={cache}", "--noprogress"],
      cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-2000:]
  assert any(cache.iterdir())  # the step, init and predict executables for the next start
