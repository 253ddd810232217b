"""Orbax checkpoints of {train state, data iterator state, config}; atomic, newest N kept."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import orbax.checkpoint as ocp


class Checkpointer:
  """Saves and restores whole training runs in workdir/checkpoints (every process calls it)."""

  def __init__(self, workdir: str | os.PathLike, max_to_keep: int = 3):
    self.directory = Path(workdir).resolve() / "checkpoints"
    options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True,
                                           enable_async_checkpointing=False)
    self._manager = ocp.CheckpointManager(self.directory, options=options,
                                          item_names=("state", "data", "config"))

  def latest_step(self) -> int | None:
    """The newest complete checkpoint's step, or None."""
    return self._manager.latest_step()

  def all_steps(self) -> list[int]:
    """Steps of every complete checkpoint, oldest first."""
    return list(self._manager.all_steps())

  def save(self, step: int, state: Any, data_state: dict, config: dict) -> None:
    """Writes a checkpoint (synchronously: the state is donated to the next step)."""
    if step in self._manager.all_steps():
      return
    self._manager.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state), data=ocp.args.JsonSave(data_state),
        config=ocp.args.JsonSave(config)), force=True)
    self._manager.wait_until_finished()

  def read_config(self, step: int | None = None) -> dict:
    """The config a checkpoint was written with (default: the newest)."""
    step = self.latest_step() if step is None else step
    if step is None:
      raise FileNotFoundError(f"No checkpoint in {self.directory}.")
    restored = self._manager.restore(step, args=ocp.args.Composite(config=ocp.args.JsonRestore()))
    return restored["config"]

  def restore(self, abstract_state: Any, step: int | None = None) -> tuple[Any, dict, dict]:
    """(state, data iterator state, config) of a step (default: the newest)."""
    step = self.latest_step() if step is None else step
    if step is None:
      raise FileNotFoundError(f"No checkpoint in {self.directory}.")
    restored = self._manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract_state), data=ocp.args.JsonRestore(),
        config=ocp.args.JsonRestore()))
    return restored["state"], restored["data"], restored["config"]

  def close(self) -> None:
    self._manager.wait_until_finished()
    self._manager.close()
