"""Resuming a run: the newest intact checkpoint, and what a changed config may and may not do."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from p2p import compat
from p2p.config import ConfigError
from p2p.train.checkpoint import Checkpointer, IncompatibleCheckpoint

# Fields a resumed run may change freely: how long, how often and where it reports. (Any other
# change that keeps every array's shape is allowed too, with a warning line.)
SAFE_ON_RESUME = ("num_epochs", "max_steps", "checkpoint_every_epochs", "max_checkpoints_to_keep",
                  "log_every_steps", "eval_examples", "num_sample_images", "steps_per_call",
                  "optim.decay_epochs", "wandb.")


def config_changes(saved: dict, current: dict, prefix: str = "") -> list[tuple[str, Any, Any]]:
  """(dotted field, saved value, current value) for every field that differs."""
  out = []
  for key in sorted(set(saved) | set(current)):
    a, b = saved.get(key), current.get(key)
    a, b = (list(v) if isinstance(v, tuple) else v for v in (a, b))  # JSON keeps tuples as lists
    if isinstance(a, dict) and isinstance(b, dict):
      out += config_changes(a, b, f"{prefix}{key}.")
    elif a != b:
      out.append((f"{prefix}{key}", a, b))
  return out


def is_safe(field: str) -> bool:
  """Whether a field is one a resumed run may change without changing what it trains."""
  return any(field == s or (s.endswith(".") and field.startswith(s)) for s in SAFE_ON_RESUME)


def incompatible(changes: list[tuple[str, Any, Any]], where: str, saved_shapes: dict,
                 wanted_shapes: dict) -> ConfigError:
  """The one error for a resume whose config builds other arrays than the checkpoint holds."""
  listed = [c for c in changes if not is_safe(c[0])] or changes
  fields = "; ".join(f"{name}: {old!r} -> {new!r}" for name, old, new in listed)
  if not fields:  # the same config, other arrays: a p2p version that builds the nets otherwise
    differ = sorted(k for k in set(saved_shapes) | set(wanted_shapes)
                    if saved_shapes.get(k) != wanted_shapes.get(k))
    fields = f"no config field, but array {differ[0]} is {saved_shapes.get(differ[0])} there"
  return ConfigError(
      f"Cannot resume {where}: this config changes the networks' or optimizer's arrays "
      f"({fields}). Either train in a new --workdir, or resume with the run's own config "
      f"(drop these overrides).")


def _attempt(ckpt: Checkpointer, abstract: Any, config_dict: dict,
             data_iter: Any) -> Callable[[int], tuple[list, Any]]:
  """Reads one step for resuming: config checked against this run's, state verified."""

  def attempt(step: int) -> tuple[list, Any]:
    try:
      saved = compat.upgrade(ckpt.read_config(step), resume=True, where=str(ckpt.directory))
    except compat.RemovedOption as e:
      raise ConfigError(str(e)) from None
    changes = config_changes(saved, config_dict)
    try:
      state, _ = ckpt.restore(abstract, step, data_iter=data_iter)
    except IncompatibleCheckpoint as e:  # checked from the metadata, before any array is read
      raise incompatible(changes, str(ckpt.directory.parent), e.saved, e.wanted) from None
    return changes, state

  return attempt


def newest_usable_step(ckpt: Checkpointer, abstract: Any, config_dict: dict) -> int:
  """The step a resume would start from (damaged checkpoints moved aside on the way)."""
  return ckpt.newest_intact(_attempt(ckpt, abstract, config_dict, None), quarantine=True)[0]


def restore_run(ckpt: Checkpointer, abstract: Any, config_dict: dict, data_iter: Any) -> Any:
  """The newest intact checkpoint's state (data_iter repositioned to it), checked against the
  config; damaged checkpoints are moved aside on the way."""
  step, (changes, state) = ckpt.newest_intact(_attempt(ckpt, abstract, config_dict, data_iter),
                                              quarantine=True)
  for name, old, new in changes:
    logging.warning("Config %s changed since the checkpoint: %r -> %r.", name, old, new)
  logging.info("Resumed from %s at step %d.", ckpt.directory, step)
  return state
