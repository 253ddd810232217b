"""Old runs keep working: a checkpoint's config.json in an earlier schema -> today's fields.

Renamed fields move to their new place silently. A removed option at its inert value is dropped
silently; in use, it is dropped with one logged line for inference (every removed training
option leaves the generator's computation unchanged), and refused for resuming training.
Options that changed the generator itself cannot be rebuilt: one clear error.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

from p2p.errors import UserError

REMOVED_NOTE = "removed from p2p; its experiments are rows of docs/experiments.md"

# old dotted name -> new dotted name
RENAMED = {
    "model.conv_transpose_impl": "kernels.conv_transpose_impl",
    "model.matmul_conv_max_size": "kernels.matmul_conv_max_size",
    "model.winograd_min_tiles": "kernels.winograd_min_tiles",
}

# Removed training options: dotted name -> the values that meant "off" (None: any value; r1_every
# did nothing unless r1_gamma > 0). None of them changed what the generator computes.
REMOVED_TRAINING = {
    "optim.r1_gamma": (0,),
    "optim.r1_every": None,
    "optim.d_augment": ("",),
    "optim.l1_pool": (1,),
}
REMOVED_VALUES = {  # a field that stays, with a value that went: (removed value, replacement)
    "optim.gan_mode": ("relativistic", "vanilla"),
    "data.patch_layout": ("random", "grid"),  # random trained on the grid's count; eval'd on it
}
# Removed options that changed the generator's layers: its checkpoint cannot be rebuilt.
REMOVED_ARCHITECTURE = {
    "model.noise_layers": (0,),
    "model.norm": ("batch", "instance", "none"),  # pixel norm is gone
    "model.g_norm": ("", "batch", "instance", "none"),
}


class RemovedOption(UserError):
  """A run uses an option this version of p2p no longer has."""


def upgrade(saved: dict[str, Any], resume: bool = False, where: str = "the run") -> dict[str, Any]:
  """A copy of a saved config dict with today's field names; removed options handled.

  resume=True: a removed option in use raises RemovedOption (training with it is not possible);
  otherwise it is dropped with one warning line, since inference does not depend on it.
  """
  config = copy.deepcopy(saved)
  for old, new in RENAMED.items():
    if _has(config, old):
      _set(config, new, _pop(config, old))
  _check_architecture(config, where)
  if _has(config, "model.noise_layers"):  # 0 (checked above): no noise inputs, nothing to keep
    _pop(config, "model.noise_layers")
  in_use = []
  for name, inert in REMOVED_TRAINING.items():
    if not _has(config, name):
      continue
    value = _pop(config, name)
    if inert is None or value in inert:
      continue
    in_use.append(f"{name}={value!r}")
  for name, (gone, replacement) in REMOVED_VALUES.items():
    if _has(config, name) and _get(config, name) == gone:
      in_use.append(f"{name}={gone!r}")
      _set(config, name, replacement)
  if in_use:
    options = ", ".join(in_use)
    if resume:
      raise RemovedOption(f"{where} was trained with {options}: {REMOVED_NOTE}. Resuming "
                          f"training with it is not possible; start a new --workdir.")
    logging.warning("%s was trained with %s (%s); its generator loads unchanged.", where,
                    options, REMOVED_NOTE)
  return config


def _check_architecture(config: dict, where: str) -> None:
  """Raises RemovedOption if the run's generator used a layer that no longer exists."""
  for name, kept in REMOVED_ARCHITECTURE.items():
    if _has(config, name) and _get(config, name) not in kept:
      raise RemovedOption(
          f"{where} was trained with {name}={_get(config, name)!r}, a generator layer "
          f"{REMOVED_NOTE}; this version cannot rebuild that generator (use a p2p checkout "
          f"from before the removal to run it).")


def _has(config: dict, dotted: str) -> bool:
  section, _, key = dotted.rpartition(".")
  return key in (config.get(section, {}) if section else config)


def _get(config: dict, dotted: str) -> Any:
  section, _, key = dotted.rpartition(".")
  return (config[section] if section else config)[key]


def _pop(config: dict, dotted: str) -> Any:
  section, _, key = dotted.rpartition(".")
  return (config[section] if section else config).pop(key)


def _set(config: dict, dotted: str, value: Any) -> None:
  section, _, key = dotted.rpartition(".")
  (config.setdefault(section, {}) if section else config)[key] = value
