"""The ConfigDict -> frozen dataclass boundary: validated once, so modules never see a ConfigDict."""

from __future__ import annotations

import dataclasses
from typing import Any

import ml_collections

PREPROCESS = ("patches", "resize")
SOURCES = ("folder", "tfds")


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
