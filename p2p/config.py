"""The ConfigDict -> frozen dataclass boundary: validated once; modules never see a ConfigDict."""

from __future__ import annotations

import dataclasses
from typing import Any

import ml_collections

PREPROCESS = ("patches", "resize")
SOURCES = ("folder", "tfds")
NORMS = ("batch", "instance", "pixel", "none")  # p2p.models.layers builds exactly these
CONV_TRANSPOSE_IMPLS = ("phase", "flax")
UPSAMPLES = ("transposed", "resize")
RECEPTIVE_FIELDS = (1, 16, 34, 70, 142, 286)
SCHEDULES = ("constant", "linear")
WANDB_MODES = ("disabled", "offline", "online")
DTYPES = ("float32", "bfloat16")


class ConfigError(ValueError):
  """A config field with a bad value; the message names the field and the fix."""


@dataclasses.dataclass(frozen=True)
class DataConfig:
  """Where the pairs come from and how they become model inputs (see configs/base.py)."""

  data_dir: str = "data/synthetic"
  source: str = "folder"
  tfds_data_dir: str = ""
  direction: str = "map_to_satellite"
  preprocess: str = "patches"
  patch_size: int = 256
  patch_layout: str = "cover"
  patch_stride: int = 0
  image_size: int = 256
  load_size: int = 286
  jitter: bool = True
  flip: bool = True
  skip_bad_files: bool = False
  verify_images: bool = True
  worker_count: int = 0
  worker_buffer_size: int = 2
  num_threads: int = 2
  prefetch_buffer_size: int = 8
  resident: bool = False

  def __post_init__(self):
    from p2p.data.folder import DIRECTIONS
    from p2p.data.transforms import PATCH_LAYOUTS
    _choice("data.direction", self.direction, DIRECTIONS)
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


@dataclasses.dataclass(frozen=True)
class ModelConfig:
  """Generator and discriminator architecture."""

  ngf: int = 64
  ndf: int = 64
  norm: str = "batch"
  g_norm: str = ""
  dropout_rate: float = 0.5
  num_downs: int = 0
  receptive_field: int = 70
  num_d: int = 1
  conv_transpose_impl: str = "phase"
  upsample: str = "transposed"
  matmul_conv_max_size: int = 16
  winograd_min_tiles: int = 128
  noise_layers: int = 0
  d_spectral_norm: bool = False
  d_conditional: bool = True

  def __post_init__(self):
    _choice("model.norm", self.norm, NORMS)
    _choice("model.g_norm", self.g_norm, ("", *NORMS))
    _choice("model.receptive_field", self.receptive_field, RECEPTIVE_FIELDS)
    _choice("model.conv_transpose_impl", self.conv_transpose_impl, CONV_TRANSPOSE_IMPLS)
    _choice("model.upsample", self.upsample, UPSAMPLES)
    if self.upsample == "resize" and self.conv_transpose_impl == "flax":
      raise ConfigError("model.upsample='resize' runs as the phase transposed conv; set "
                        "model.conv_transpose_impl='phase' or model.upsample='transposed'.")
    _positive("model.ngf", self.ngf)
    _positive("model.ndf", self.ndf)
    _positive("model.num_d", self.num_d)
    if not 0.0 <= self.dropout_rate < 1.0:
      raise ConfigError(f"model.dropout_rate={self.dropout_rate} must be in [0, 1).")
    if self.num_downs < 0:
      raise ConfigError(f"model.num_downs={self.num_downs} must be >= 0 (0 = log2(image_size)).")
    if self.noise_layers < 0:
      raise ConfigError(f"model.noise_layers={self.noise_layers} must be >= 0 (0 = no noise "
                        f"inputs; N = the N up blocks before the output get them).")
    if self.winograd_min_tiles < 0:
      raise ConfigError(f"model.winograd_min_tiles={self.winograd_min_tiles} must be >= 0 "
                        f"(0 = never).")
    if self.matmul_conv_max_size < 0:
      raise ConfigError(f"model.matmul_conv_max_size={self.matmul_conv_max_size} must be >= 0 "
                        f"(0 = never).")


@dataclasses.dataclass(frozen=True)
class OptimConfig:
  """Adam and its learning-rate schedule (D's rate scaled by d_lr_scale), and the losses."""

  learning_rate: float = 2e-4
  d_lr_scale: float = 1.0
  b1: float = 0.5
  b2: float = 0.999
  schedule: str = "constant"
  decay_epochs: int = 0
  gan_mode: str = "vanilla"
  l1_weight: float = 100.0
  l1_pool: int = 1
  gan_weight: float = 1.0
  disc_loss_weight: float = 1.0
  fm_weight: float = 0.0
  ema_decay: float = 0.0
  d_augment: str = ""
  r1_gamma: float = 0.0
  r1_every: int = 1

  def __post_init__(self):
    _choice("optim.schedule", self.schedule, SCHEDULES)
    from p2p.augment import parse_policy
    try:
      parse_policy(self.d_augment)
    except ValueError as e:
      raise ConfigError(f"optim.d_augment={self.d_augment!r}: {e}") from None
    if not 0 <= self.ema_decay < 1:
      raise ConfigError(f"optim.ema_decay={self.ema_decay} must be in [0, 1): 0 turns the "
                        f"generator's weight average off, 0.999 averages ~1000 steps.")
    from p2p.losses import GAN_MODES
    _choice("optim.gan_mode", self.gan_mode, GAN_MODES)
    if self.learning_rate <= 0:
      raise ConfigError(f"optim.learning_rate={self.learning_rate} must be > 0.")
    if self.d_lr_scale <= 0:
      raise ConfigError(f"optim.d_lr_scale={self.d_lr_scale} must be > 0: D's learning rate is "
                        f"learning_rate x d_lr_scale (1 = the paper's equal rates).")
    if self.decay_epochs < 0:
      raise ConfigError(f"optim.decay_epochs={self.decay_epochs} must be >= 0.")
    for name in ("l1_weight", "gan_weight", "fm_weight", "r1_gamma"):
      if getattr(self, name) < 0:
        raise ConfigError(f"optim.{name}={getattr(self, name)} must be >= 0.")
    _positive("optim.l1_pool", self.l1_pool)
    _positive("optim.r1_every", self.r1_every)


@dataclasses.dataclass(frozen=True)
class WandbConfig:
  """Weights & Biases logging; never online unless asked for."""

  mode: str = "disabled"
  project: str = "p2p"
  entity: str = ""
  name: str = ""

  def __post_init__(self):
    _choice("wandb.mode", self.mode, WANDB_MODES)


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  """Everything a training run needs, validated."""

  data: DataConfig
  model: ModelConfig
  optim: OptimConfig
  wandb: WandbConfig
  seed: int = 0
  batch_size: int = 1
  num_epochs: int = 200
  max_steps: int = 0
  checkpoint_every_epochs: int = 10
  max_checkpoints_to_keep: int = 3
  log_every_steps: int = 100
  eval_examples: int = 64
  num_sample_images: int = 4
  compute_dtype: str = "float32"
  steps_per_call: int = 1

  def __post_init__(self):
    _positive("batch_size", self.batch_size)
    _positive("steps_per_call", self.steps_per_call)
    _positive("num_epochs", self.num_epochs)
    _positive("checkpoint_every_epochs", self.checkpoint_every_epochs)
    _positive("max_checkpoints_to_keep", self.max_checkpoints_to_keep)
    _positive("log_every_steps", self.log_every_steps)
    _choice("compute_dtype", self.compute_dtype, DTYPES)
    if self.max_steps < 0:
      raise ConfigError(f"max_steps={self.max_steps} must be >= 0 (0 = num_epochs decides).")
    if self.optim.decay_epochs > self.num_epochs:
      raise ConfigError(f"optim.decay_epochs={self.optim.decay_epochs} is more than "
                        f"num_epochs={self.num_epochs}.")
    if self.model.num_d > 1:
      from p2p.models.discriminator import coarsest_size, min_input_size
      coarse, need = (coarsest_size(self.data.image_size, self.model.num_d),
                      min_input_size(self.model.receptive_field))
      if coarse < need:
        raise ConfigError(f"model.num_d={self.model.num_d} gives the coarsest discriminator "
                          f"{coarse} px inputs at data.image_size={self.data.image_size}; "
                          f"receptive_field={self.model.receptive_field} needs >= {need}. "
                          f"Use fewer scales or larger images.")
    if self.data.image_size % self.optim.l1_pool:
      raise ConfigError(f"optim.l1_pool={self.optim.l1_pool} must divide data.image_size="
                        f"{self.data.image_size} (L1 between l1_pool x l1_pool block means).")
    if self.data.image_size & (self.data.image_size - 1) or self.data.image_size < 32:
      if not self.model.num_downs:
        raise ConfigError(f"data.image_size={self.data.image_size} must be a power of two >= 32 "
                          f"for the U-Net, or set model.num_downs.")


def _choice(field: str, value: Any, choices: tuple[str, ...]) -> None:
  if value not in choices:
    raise ConfigError(f"{field}={value!r} is not one of {choices}.")


def _positive(field: str, value: int) -> None:
  if value <= 0:
    raise ConfigError(f"{field}={value} must be > 0.")


def to_dataclass(cls: type, config: ml_collections.ConfigDict | dict, prefix: str) -> Any:
  """Builds a frozen dataclass from a ConfigDict section, naming any unknown or mistyped field."""
  values = dict(config)
  fields = {f.name: f for f in dataclasses.fields(cls)}
  unknown = sorted(set(values) - set(fields))
  if unknown:
    raise ConfigError(f"Unknown config field(s) {[f'{prefix}.{k}' for k in unknown]}; "
                      f"valid fields: {sorted(fields)}.")
  for name, value in values.items():
    default = fields[name].default
    if (default is not dataclasses.MISSING and value is not None
        and not isinstance(value, type(default))
        and not (isinstance(default, float) and isinstance(value, int))):
      raise ConfigError(f"{prefix}.{name}={value!r} should be a {type(default).__name__}.")
  return cls(**values)


def data_config(config: ml_collections.ConfigDict) -> DataConfig:
  """The validated data section of an experiment config."""
  return to_dataclass(DataConfig, config.data, "data")


SECTIONS = {"data": DataConfig, "model": ModelConfig, "optim": OptimConfig, "wandb": WandbConfig}


def train_config(config: ml_collections.ConfigDict) -> TrainConfig:
  """The validated whole of an experiment config."""
  values = dict(config)
  missing = sorted(set(SECTIONS) - set(values))
  if missing:
    raise ConfigError(f"Config lacks section(s) {missing}; start from configs/base.py.")
  sections = {name: to_dataclass(cls, values.pop(name), name) for name, cls in SECTIONS.items()}
  return to_dataclass(TrainConfig, {**values, **sections}, "config")
