"""Orbax checkpoints of {train state, each process's data position, config}; atomic, newest N kept.

Every process calls save and restore (Orbax coordinates them). The state is saved as global
arrays, so a checkpoint written on N devices restores on M. The Grain iterator state is one
file per process (grain's Orbax handler); a run resumed with another process count re-derives
each process's position from the step, since every step reads exactly one batch per process.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import grain
import orbax.checkpoint as ocp


class Checkpointer:
  """Saves and restores whole training runs in workdir/checkpoints."""

  def __init__(self, workdir: str | os.PathLike, max_to_keep: int = 3):
    self.directory = Path(workdir).resolve() / "checkpoints"
    options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True,
                                           enable_async_checkpointing=False)
    self._manager = ocp.CheckpointManager(
        self.directory, options=options,
        item_handlers={"state": ocp.StandardCheckpointHandler(),
                       "data": grain.checkpoint.CheckpointHandler(),
                       "config": ocp.JsonCheckpointHandler()})

  def latest_step(self) -> int | None:
    """The newest complete checkpoint's step, or None."""
    return self._manager.latest_step()

  def all_steps(self) -> list[int]:
    """Steps of every complete checkpoint, oldest first."""
    return list(self._manager.all_steps())

  def save(self, step: int, state: Any, data_iter: Any, config: dict) -> None:
    """Writes a checkpoint (synchronously: the state is donated to the next step)."""
    if step in self._manager.all_steps():
      return
    self._manager.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state), data=grain.checkpoint.CheckpointSave(data_iter),
        config=ocp.args.JsonSave(config)), force=True)
    self._manager.wait_until_finished()

  def read_config(self, step: int | None = None) -> dict:
    """The config a checkpoint was written with (default: the newest)."""
    step = self._step(step)
    return self._manager.restore(step, args=ocp.args.Composite(
        config=ocp.args.JsonRestore()))["config"]

  def restore(self, abstract_state: Any, step: int | None = None,
              data_iter: Any = None) -> tuple[Any, dict]:
    """(state, config) of a step (default: the newest); also repositions data_iter if given."""
    step = self._step(step)
    restored = self._manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract_state), config=ocp.args.JsonRestore()))
    if data_iter is not None:
      self._restore_data(step, data_iter)
    return restored["state"], restored["config"]

  def _restore_data(self, step: int, data_iter: Any) -> None:
    try:
      self._manager.restore(step, args=ocp.args.Composite(
          data=grain.checkpoint.CheckpointRestore(data_iter)))
    except ValueError as e:  # written by another number of processes
      logging.warning("No data position for this process in checkpoint %d (%s); resuming the "
                      "data at batch %d, the step.", step, e, step)
      try:
        data_iter.set_state({"next_index": step})
      except (KeyError, TypeError, ValueError):  # worker processes keep another state format
        logging.warning("Could not reposition the data; it restarts from the epoch's start.")

  def _step(self, step: int | None) -> int:
    step = self.latest_step() if step is None else step
    if step is None:
      raise FileNotFoundError(f"No checkpoint in {self.directory}.")
    return step

  def close(self) -> None:
    """Waits for pending writes and releases the manager."""
    self._manager.wait_until_finished()
    self._manager.close()
