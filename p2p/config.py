"""The one config schema: typed, frozen dataclasses, each field with its default and meaning.

Experiment files (configs/*.py) start from `default_config()`, a ConfigDict of these defaults,
and override a few fields; `train_config` turns the result into a validated TrainConfig once,
so no module below sees a ConfigDict. docs/training.md lists every field (`field_table`).
"""

from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path
from typing import Any

import ml_collections

from p2p.data.folder import DIRECTIONS, orient
from p2p.data.layouts import LAYOUTS, VAL_SOURCES
from p2p.errors import UserError
from p2p.data.transforms import PATCH_LAYOUTS
from p2p.fields import field
from p2p.models import NORMS, RECEPTIVE_FIELDS, UPSAMPLES, coarsest_size, min_input_size
from p2p.ops import KernelOptions
from p2p.train.losses import GAN_MODES

PREPROCESS = ("patches", "resize")
SOURCES = ("folder", "tfds")
SCHEDULES = ("constant", "linear")
WANDB_MODES = ("disabled", "offline", "online")
DTYPES = ("auto", "float32", "bfloat16")


class ConfigError(UserError):
  """A config field with a bad value; the message names the field and the fix."""


@dataclasses.dataclass(frozen=True)
class DataConfig:
  """Where the pairs come from and how they become model inputs."""

  data_dir: str = field("data/maps", "dataset folder (docs/data.md: layouts; `p2p-inspect DIR` "
                        "checks one; `python -m p2p.data.download --out data/maps` fetches "
                        "the maps)")
  layout: str = field("auto", "auto | side_by_side (<split>/*: A left, B right) | folders "
                      "(<split>/A, <split>/B, matched by stem) | explicit (a_dir, b_dir)")
  a_dir: str = field("", "explicit layout: A folder under data_dir, '{split}' = train/val")
  b_dir: str = field("", "explicit layout: B folder under data_dir, '{split}' = train/val")
  direction: str = field("BtoA", "BtoA | AtoB; aliases map_to_satellite (= BtoA on the maps, "
                         "whose A is the photo) | satellite_to_map")
  a_channels: int = field(0, "A's channels; 0 = from the data (set 1 or 3 to convert RGB/gray)")
  b_channels: int = field(0, "B's channels; 0 = from the data")
  a_dtype: str = field("", "A's sample type (recorded from the data: uint8, uint16, float32...)")
  b_dtype: str = field("", "B's sample type (recorded from the data)")
  a_range: tuple = field((), "(lo, hi) of A's values, scaled to [-1, 1]; () = the dtype's "
                         "(uint16: 0..65535; floats: 0..1)")
  b_range: tuple = field((), "(lo, hi) of B's values; () = the dtype's range")
  val_source: str = field("auto", "auto (val/ if present, else holdout) | folder | holdout")
  val_fraction: float = field(0.05, "holdout: share of train pairs held out for val, by a hash "
                              "of the file stem")
  source: str = field("folder", "folder | tfds (a prepared pix2pix_maps TFDS dataset)")
  tfds_data_dir: str = field("", "TFDS data_dir of pix2pix_maps, for source=tfds")
  preprocess: str = field("patches", "patches (native-scale tiles) | resize (the whole half, "
                          "the paper's setting)")
  patch_size: int = field(256, "px, side of a native-scale tile")
  patch_layout: str = field("cover", "cover (tiles reach every pixel) | grid (the seed's "
                            "non-overlapping tiles, 4 per 600 px half)")
  patch_stride: int = field(0, "px between cover tiles; 0 = the fewest evenly spaced")
  image_size: int = field(256, "px, side of the model's input")
  load_size: int = field(286, "px, resize before the random crop (jitter)")
  jitter: bool = field(True, "train: resize to load_size, then one random crop of both images")
  flip: bool = field(True, "train: horizontal flip of both images with p = 0.5")
  skip_bad_files: bool = field(False, "skip (and log) undecodable or misshapen files instead "
                               "of stopping")
  verify_images: bool = field(True, "decode every file at start-up (~3 ms per 1200x600 JPEG)")
  worker_count: int = field(0, "Grain worker processes; 0 = reader threads in this process")
  worker_buffer_size: int = field(2, "batches each worker process keeps ready")
  num_threads: int = field(2, "reader threads per process")
  prefetch_buffer_size: int = field(8, "batches the reader threads prefetch")
  resident: bool = field(False, "decode the train split once, keep it on the device and jitter "
                         "there (GPU, one process)")

  def __post_init__(self):
    _choice("data.direction", self.direction, DIRECTIONS)
    _choice("data.layout", self.layout, LAYOUTS)
    _choice("data.val_source", self.val_source, VAL_SOURCES)
    for side in ("a", "b"):
      given = getattr(self, f"{side}_range")
      if given and (len(given) != 2 or not float(given[0]) < float(given[1])):
        raise ConfigError(f"data.{side}_range={given!r} must be () or (lo, hi) with lo < hi.")
      if getattr(self, f"{side}_channels") < 0:
        raise ConfigError(f"data.{side}_channels must be >= 0 (0 = from the data).")
    if not 0.0 <= self.val_fraction < 1.0:
      raise ConfigError(f"data.val_fraction={self.val_fraction} must be in [0, 1).")
    if self.layout == "explicit" and not (self.a_dir and self.b_dir):
      raise ConfigError("data.layout='explicit' needs data.a_dir and data.b_dir (folders under "
                        "data.data_dir; '{split}' stands for train/val).")
    _choice("data.preprocess", self.preprocess, PREPROCESS)
    _choice("data.patch_layout", self.patch_layout, PATCH_LAYOUTS)
    _choice("data.source", self.source, SOURCES)
    for name in ("patch_size", "image_size", "load_size", "num_threads", "prefetch_buffer_size",
                 "worker_buffer_size"):
      _positive(f"data.{name}", getattr(self, name))
    for name in ("patch_stride", "worker_count"):
      if getattr(self, name) < 0:
        raise ConfigError(f"data.{name}={getattr(self, name)} must be >= 0.")
    if self.jitter and self.load_size < self.image_size:
      raise ConfigError(f"data.load_size={self.load_size} must be >= data.image_size="
                        f"{self.image_size} (the random crop is cut from the load_size image).")
    if self.source == "tfds" and not self.tfds_data_dir:
      raise ConfigError("data.source='tfds' needs data.tfds_data_dir (where "
                        "`python -m p2p.data.tfds_maps` prepared pix2pix_maps).")

  def model_channels(self) -> tuple[int, int]:
    """(input, output) channels of the networks: the data's, by direction (3 if unrecorded)."""
    return orient(self.a_channels or 3, self.b_channels or 3, self.direction)


@dataclasses.dataclass(frozen=True)
class ModelConfig:
  """Generator and discriminator architecture."""

  ngf: int = field(64, "generator filters in the first layer")
  ndf: int = field(64, "discriminator filters in the first layer")
  norm: str = field("batch", "batch | instance | none (both networks)")
  g_norm: str = field("", "G's own norm when it differs from model.norm; '' = model.norm")
  dropout_rate: float = field(0.5, "generator dropout in the inner up blocks")
  num_downs: int = field(0, "U-Net depth; 0 = log2(image_size) (8 at 256 px)")
  receptive_field: int = field(70, "PatchGAN receptive field, px: 1 | 16 | 34 | 70 | 142 | 286")
  num_d: int = field(1, "discriminator scales; > 1: pix2pixHD's multi-scale D")
  upsample: str = field("transposed", "G's up convs: transposed (paper) | resize (nearest 2x + "
                        "3x3 conv, no checkerboard; same FLOPs)")
  d_spectral_norm: bool = field(False, "spectral norm on every D conv")
  d_conditional: bool = field(True, "D sees (map, photo) pairs; False: the photo alone")

  def __post_init__(self):
    _choice("model.norm", self.norm, NORMS)
    _choice("model.g_norm", self.g_norm, ("", *NORMS))
    _choice("model.receptive_field", self.receptive_field, RECEPTIVE_FIELDS)
    _choice("model.upsample", self.upsample, UPSAMPLES)
    for name in ("ngf", "ndf", "num_d"):
      _positive(f"model.{name}", getattr(self, name))
    if not 0.0 <= self.dropout_rate < 1.0:
      raise ConfigError(f"model.dropout_rate={self.dropout_rate} must be in [0, 1).")
    if self.num_downs < 0:
      raise ConfigError(f"model.num_downs={self.num_downs} must be >= 0 (0 = log2(image_size)).")


@dataclasses.dataclass(frozen=True)
class OptimConfig:
  """Adam, its learning-rate schedule, and the weights of the losses."""

  learning_rate: float = field(2e-4, "Adam step size, both networks")
  d_lr_scale: float = field(1.0, "D's step size = learning_rate x this")
  b1: float = field(0.5, "Adam beta1")
  b2: float = field(0.999, "Adam beta2")
  schedule: str = field("constant", "constant | linear (PyTorch pix2pix: decays to 0 at the end)")
  decay_epochs: int = field(0, "linear: the last epochs, over which the rate decays to 0")
  gan_mode: str = field("vanilla", "vanilla (BCE on logits) | lsgan (least squares) | hinge")
  l1_weight: float = field(100.0, "lambda_L1 on |G(x) - y|")
  gan_weight: float = field(1.0, "lambda_GAN on G's adversarial loss; 0 = L1 only")
  disc_loss_weight: float = field(1.0, "D loss = this x (real + fake); PyTorch pix2pix uses 0.5")
  fm_weight: float = field(0.0, "> 0: pix2pixHD feature matching on D's blocks (it uses 10)")
  ema_decay: float = field(0.0, "> 0: also keep an EMA of G's weights (used to sample)")

  def __post_init__(self):
    _choice("optim.schedule", self.schedule, SCHEDULES)
    _choice("optim.gan_mode", self.gan_mode, GAN_MODES)
    if not 0 <= self.ema_decay < 1:
      raise ConfigError(f"optim.ema_decay={self.ema_decay} must be in [0, 1): 0 turns the "
                        f"generator's weight average off, 0.999 averages ~1000 steps.")
    for name in ("learning_rate", "d_lr_scale"):
      if getattr(self, name) <= 0:
        raise ConfigError(f"optim.{name}={getattr(self, name)} must be > 0.")
    for name in ("decay_epochs", "l1_weight", "gan_weight", "fm_weight"):
      if getattr(self, name) < 0:
        raise ConfigError(f"optim.{name}={getattr(self, name)} must be >= 0.")


@dataclasses.dataclass(frozen=True)
class WandbConfig:
  """Weights & Biases logging; never online unless asked for."""

  mode: str = field("disabled", "disabled | offline | online (never online by default)")
  project: str = field("p2p", "W&B project")
  entity: str = field("", "W&B entity (team); '' = your default")
  name: str = field("", "run name; '' = the workdir's name")

  def __post_init__(self):
    _choice("wandb.mode", self.mode, WANDB_MODES)


def _section(cls: type, doc: str) -> Any:
  return dataclasses.field(default_factory=cls, metadata={"doc": doc})


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  """Everything a training run needs, validated."""

  seed: int = field(0, "PRNG seed for init, dropout, shuffling and jitter")
  batch_size: int = field(1, "global batch: images per step over all devices")
  num_epochs: int = field(200, "passes over the training examples")
  max_steps: int = field(0, "stop after this many steps; 0 = num_epochs decides")
  checkpoint_every_epochs: int = field(10, "epochs between checkpoints (also at the end and "
                                       "on SIGTERM)")
  max_checkpoints_to_keep: int = field(3, "newest checkpoints kept in workdir/checkpoints")
  log_every_steps: int = field(100, "steps between metrics lines (JSONL, W&B, console)")
  eval_examples: int = field(64, "val examples scored (val_l1) after every epoch")
  num_sample_images: int = field(4, "val examples in each epoch's sample image")
  compute_dtype: str = field(
      "auto", "auto | float32 | bfloat16 activations (params, loss and optimizer stay float32); "
      "auto: bf16 on CPUs that run it faster (AMX/AVX512-BF16, timed once), else float32")
  steps_per_call: int = field(1, "steps fused per jitted call (lax.scan); > 1 helps on GPUs")
  data: DataConfig = _section(DataConfig, "the dataset and input pipeline")
  model: ModelConfig = _section(ModelConfig, "the networks")
  kernels: KernelOptions = _section(KernelOptions, "conv kernels: speed only, never outputs")
  optim: OptimConfig = _section(OptimConfig, "optimizer and losses")
  wandb: WandbConfig = _section(WandbConfig, "Weights & Biases")

  def __post_init__(self):
    for name in ("batch_size", "steps_per_call", "num_epochs", "checkpoint_every_epochs",
                 "max_checkpoints_to_keep", "log_every_steps"):
      _positive(name, getattr(self, name))
    _choice("compute_dtype", self.compute_dtype, DTYPES)
    if self.max_steps < 0:
      raise ConfigError(f"max_steps={self.max_steps} must be >= 0 (0 = num_epochs decides).")
    if self.optim.decay_epochs > self.num_epochs:
      raise ConfigError(f"optim.decay_epochs={self.optim.decay_epochs} is more than "
                        f"num_epochs={self.num_epochs}.")
    size = self.data.image_size
    if self.model.num_d > 1:
      coarse, need = (coarsest_size(size, self.model.num_d),
                      min_input_size(self.model.receptive_field))
      if coarse < need:
        raise ConfigError(f"model.num_d={self.model.num_d} gives the coarsest discriminator "
                          f"{coarse} px inputs at data.image_size={size}; receptive_field="
                          f"{self.model.receptive_field} needs >= {need}. Use fewer scales or "
                          f"larger images.")
    if (size & (size - 1) or size < 32) and not self.model.num_downs:
      raise ConfigError(f"data.image_size={size} must be a power of two >= 32 for the U-Net, "
                        f"or set model.num_downs.")


SECTIONS = {f.name: f.default_factory for f in dataclasses.fields(TrainConfig)
            if f.default_factory is not dataclasses.MISSING}


def _choice(name: str, value: Any, choices: tuple) -> None:
  if value not in choices:
    raise ConfigError(f"{name}={value!r} is not one of {tuple(choices)}.")


def _positive(name: str, value: int) -> None:
  if value <= 0:
    raise ConfigError(f"{name}={value} must be > 0.")


def default_config() -> ml_collections.ConfigDict:
  """Every field at its default (the pix2pix paper on the maps, map -> satellite)."""
  return ml_collections.ConfigDict(dataclasses.asdict(TrainConfig()))


def to_dataclass(cls: type, values: ml_collections.ConfigDict | dict, prefix: str) -> Any:
  """A frozen dataclass from one section, naming any unknown, mistyped or invalid field."""
  values = dict(values)
  fields = {f.name: f for f in dataclasses.fields(cls)}
  unknown = sorted(set(values) - set(fields))
  if unknown:
    raise ConfigError(f"Unknown config field(s) {[f'{prefix}{k}' for k in unknown]}; valid "
                      f"fields: {sorted(fields)} (docs/training.md lists them all).")
  for name, value in values.items():
    default = fields[name].default
    if isinstance(default, tuple) and isinstance(value, list):  # a tuple read back from JSON
      values[name] = value = tuple(value)
    if (default is not dataclasses.MISSING and value is not None
        and not isinstance(value, type(default))
        and not (isinstance(default, float) and isinstance(value, int))):
      raise ConfigError(f"{prefix}{name}={value!r} should be a {type(default).__name__}.")
  try:
    return cls(**values)
  except ConfigError:
    raise
  except ValueError as e:  # a section declared outside this module (kernels) names its field
    raise ConfigError(f"{prefix}{e}") from None


def data_config(config: ml_collections.ConfigDict) -> DataConfig:
  """The validated data section of an experiment config."""
  return to_dataclass(DataConfig, config.data, "data.")


def train_config(config: ml_collections.ConfigDict | dict) -> TrainConfig:
  """The validated whole of an experiment config (absent fields take their defaults)."""
  values = dict(config)
  sections = {name: to_dataclass(cls, values.pop(name, {}), f"{name}.")
              for name, cls in SECTIONS.items()}
  return to_dataclass(TrainConfig, {**values, **sections}, "")


def tiny(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """Shrinks an experiment to a CPU smoke run (seconds) on the same code path."""
  size = 128 if config.model.receptive_field == 286 else 32  # RF 286 needs >= 96 px inputs
  size <<= max(config.model.num_d - 1, 0)  # each extra D scale halves its input
  config.data.image_size = config.data.patch_size = size
  config.data.load_size = size + size // 8
  config.data.verify_images = False
  config.model.ngf = config.model.ndf = 8
  config.num_epochs = 1
  config.optim.decay_epochs = min(config.optim.decay_epochs, 1)
  config.max_steps = 8
  config.log_every_steps = 2
  config.checkpoint_every_epochs = 1
  config.eval_examples = 2
  config.num_sample_images = 2
  return config


def finish(config: ml_collections.ConfigDict, arg: str | None) -> ml_collections.ConfigDict:
  """Applies a config file's argument (`file.py:tiny`); anything else is an error naming it."""
  if arg in (None, ""):
    return config
  if arg == "tiny":
    return tiny(config)
  raise ValueError(f"Unknown config argument {arg!r}; the only one is 'tiny' (file.py:tiny).")


def load_config_file(spec: str) -> ml_collections.ConfigDict:
  """The ConfigDict of a config file, `path.py` or `path.py:arg`, as --config=spec would give."""
  path, _, arg = spec.partition(":")
  if not Path(path).is_file():
    raise ConfigError(f"Config file {path} not found.")
  module_spec = importlib.util.spec_from_file_location(f"p2p_config_{Path(path).stem}", path)
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  return module.get_config(arg) if arg else module.get_config()


def field_table(cls: type = TrainConfig, prefix: str = "") -> list[tuple[str, Any, str]]:
  """(dotted name, default, meaning) of every field, sections expanded (docs/training.md)."""
  rows = []
  for f in dataclasses.fields(cls):
    if f.default_factory is not dataclasses.MISSING:
      rows += field_table(f.default_factory, f"{prefix}{f.name}.")
    else:
      rows.append((f"{prefix}{f.name}", f.default, f.metadata.get("doc", "")))
  return rows
