"""Experiment configs: each is valid, each `:tiny` trains; the CLI names config mistakes."""

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from p2p import config as base
from p2p.config import ConfigError, train_config
from p2p.data import synthetic
from p2p.train.loop import train_and_evaluate

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENTS = sorted(p.stem for p in (ROOT / "configs").glob("*.py"))


def module(name: str):
  """A config file as ml_collections loads it: by path, importing nothing but p2p."""
  spec = importlib.util.spec_from_file_location(f"config_{name}", ROOT / "configs" / f"{name}.py")
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  return mod


def load(name: str, arg: str | None = None):
  return base.load_config_file(f"{ROOT / 'configs' / name}.py{':' + arg if arg else ''}")


@pytest.fixture(scope="module")
def maps128(tmp_path_factory) -> Path:
  """Synthetic maps with 128 px halves (room for RF 286's tiny size): 4 train, 1 val."""
  return synthetic.write_dataset(tmp_path_factory.mktemp("data") / "maps", train=4, val=1,
                                 seed=1, size=128)


def test_the_seed_experiments_and_the_demo_are_all_here():
  assert set(EXPERIMENTS) >= {"rf70_patches", "rf286_patches", "rf70_resize", "rf16_resize",
                              "b4_patches", "b10_patches", "demo"}


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_full_config_is_valid_and_documents_its_command_and_choices(name):
  config = train_config(load(name))
  assert config.wandb.mode != "online"
  doc = module(name).__doc__
  assert f"p2p-train --config=configs/{name}.py" in doc
  choices = doc.split("Choices", 1)[1]
  assert choices.count("\n- ") >= 1  # one line per choice
  assert not re.search(r"20\d\d-\d\d-\d\d|stop \d", doc)  # no history: docs/experiments.md


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_configs_override_only_what_differs_from_the_one_schema(name):
  """A config file declares no field: every key it sets exists in p2p.config's defaults."""
  source = (ROOT / "configs" / f"{name}.py").read_text()
  assert "ConfigDict()" not in source and "unlock" not in source
  want = {k for k, _, _ in base.field_table()}
  assert set(_flat(load(name).to_dict())) == want


def _flat(tree: dict, prefix: str = "") -> dict:
  out = {}
  for key, value in tree.items():
    out.update(_flat(value, f"{prefix}{key}.") if isinstance(value, dict)
               else {f"{prefix}{key}": value})
  return out


def test_every_field_is_documented_in_the_schema_and_in_docs_training():
  rows = base.field_table()
  assert len({name for name, _, _ in rows}) == len(rows) > 50
  assert all(doc for _, _, doc in rows)
  text = (ROOT / "docs" / "training.md").read_text()
  for name, default, _ in rows:
    assert f"`{name}`" in text, name
    assert f"| `{name}` | `{default!r}` |" in text, name


def test_default_data_dir_is_where_the_download_puts_the_maps():
  assert train_config(base.default_config()).data.data_dir == "data/maps"
  for name in EXPERIMENTS:
    want = "data/synthetic" if name == "demo" else "data/maps"
    assert train_config(load(name)).data.data_dir == want, name


def test_seed_settings():
  rf70 = train_config(load("rf70_patches"))
  assert (rf70.batch_size, rf70.num_epochs, rf70.model.receptive_field) == (1, 200, 70)
  assert (rf70.data.preprocess, rf70.data.patch_layout) == ("patches", "grid")
  assert (rf70.optim.l1_weight, rf70.model.dropout_rate, rf70.data.load_size) == (100, 0.5, 286)
  assert rf70.data.direction == "BtoA"  # the maps' B (right half) is the map: map -> satellite
  assert train_config(load("rf286_patches")).model.receptive_field == 286
  assert train_config(load("rf70_resize")).num_epochs == 400
  assert train_config(load("rf16_resize")).model.receptive_field == 16
  assert train_config(load("b4_patches")).batch_size == 4
  assert train_config(load("b10_patches")).batch_size == 10


@pytest.mark.slow
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
    base.finish(base.default_config(), "huge")


def test_unknown_field_is_named():
  config = base.default_config()
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
  config = base.default_config()
  config.model.num_d = num_d
  with pytest.raises(ConfigError, match=re.escape(message)):
    train_config(config)
  config.model.num_d = 4  # the coarsest scale sees 32 px
  assert train_config(config).model.num_d == 4
  config.model.num_d = 2  # the smoke variant grows its images to keep two scales valid
  assert train_config(base.tiny(config)).data.image_size == 64


def test_d_lr_scale_is_checked():
  config = base.default_config()
  config.optim.d_lr_scale = 0.0
  with pytest.raises(ConfigError, match=re.escape("optim.d_lr_scale=0.0 must be > 0")):
    train_config(config)


def test_g_norm_is_checked():
  config = base.default_config()
  config.model.g_norm = "group"
  with pytest.raises(ConfigError, match=re.escape("model.g_norm='group' is not one of")):
    train_config(config)


def test_upsample_is_checked():
  config = base.default_config()
  config.model.upsample = "bilinear"
  with pytest.raises(ConfigError, match=re.escape("model.upsample='bilinear'")):
    train_config(config)
  config.model.upsample, config.kernels.conv_transpose_impl = "resize", "flax"
  assert train_config(config).kernels.conv_transpose_impl == "flax"


@pytest.mark.parametrize("field,value,message", [
    ("winograd_min_tiles", -1, "kernels.winograd_min_tiles=-1 must be >= 0"),
    ("conv_transpose_impl", "cudnn", "kernels.conv_transpose_impl='cudnn' is not one of")])
def test_kernel_options_are_their_own_checked_section(field, value, message):
  config = base.default_config()
  config.kernels[field] = value
  with pytest.raises(ConfigError, match=re.escape(message)):
    train_config(config)
  assert "winograd_min_tiles" not in base.default_config().model


def run_main(*args: str, cwd: Path = ROOT, **popen) -> subprocess.Popen:
  env = {**os.environ, "PYTHONUNBUFFERED": "1"}
  return subprocess.Popen([sys.executable, "-m", "p2p.main", *args], cwd=cwd, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)


@pytest.mark.slow
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


@pytest.mark.slow
def test_cli_missing_config_file(tmp_path):
  proc = run_main(f"--config={tmp_path}/nothere.py", f"--workdir={tmp_path}")
  _, err = proc.communicate(timeout=120)
  assert proc.returncode != 0 and "could not be loaded" in err and "nothere.py" in err
  assert "Traceback" not in err


@pytest.mark.slow
def test_p2p_train_script_finds_the_configs_from_any_folder_and_fills_its_cache(maps128,
                                                                                 tmp_path):
  """The console script, run outside the checkout with a relative configs/ path, writes the
  persistent compilation cache it is given (the step, init and predict executables)."""
  script = Path(sys.executable).parent / "p2p-train"
  if not script.exists():
    pytest.skip("p2p-train is not installed beside this python (pip install -e .)")
  env = {k: v for k, v in os.environ.items() if k != "JAX_COMPILATION_CACHE_DIR"}
  cache = tmp_path / "cache"
  result = subprocess.run(
      [str(script), "--config=configs/demo.py:tiny", f"--workdir={tmp_path / 'run'}",
       f"--config.data.data_dir={maps128}", "--config.max_steps=1", "--noprogress",
       f"--compilation_cache_dir={cache}"],
      cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-2000:]
  assert "at step 1. Checkpoint: step 1" in result.stdout
  assert any(cache.iterdir())


def test_config_paths_resolve_against_the_project_when_not_found_here(tmp_path, monkeypatch):
  from p2p import cli
  monkeypatch.chdir(tmp_path)
  demo = ROOT / "configs" / "demo.py"
  assert cli.resolve_config_path(["x", "--config=configs/demo.py:tiny", "--workdir=w"]) == [
      "x", f"--config={demo}:tiny", "--workdir=w"]
  assert cli.resolve_config_path(["--config=demo.py"]) == [f"--config={demo}"]
  (tmp_path / "mine.py").write_text("")
  assert cli.resolve_config_path(["--config=mine.py"]) == ["--config=mine.py"]  # found here
  assert base.load_config_file(f"{demo}:tiny").data.image_size == 32
