"""Orbax checkpoints of {train state, each process's data position, config, checksums}.

Every process calls save and restore (Orbax coordinates them). The state is saved as global
arrays, so a checkpoint written on N devices restores on M. The Grain iterator state is one
file per process (grain's Orbax handler); a run resumed with another process count re-derives
each process's position from the step, since every step reads exactly one batch per process.

Every checkpoint records an xxh3 checksum of each array, verified on every restore. A damaged
checkpoint (unreadable, or failing its checksums) is skipped for the newest intact one; training
also moves it to checkpoints/corrupt/<step>/ so that it is never tried again.
"""

from __future__ import annotations

import gc
import logging
import os
import re
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import grain
import jax
import orbax.checkpoint as ocp

from p2p.errors import UserError
from p2p.train import distributed
from p2p.train.checksums import checksums, mismatches, shapes

T = TypeVar("T")
CORRUPT = "corrupt"


class CheckpointError(UserError):
  """A run folder's checkpoints cannot be used as asked; the message says why and what to do."""


def no_checkpoint(directory: Path, workdir: str | os.PathLike) -> CheckpointError:
  """The error for a run folder that holds no checkpoint at all."""
  return CheckpointError(f"{directory} holds no checkpoint; train first (p2p-train "
                         f"--config=... --workdir={workdir}).")


class IncompatibleCheckpoint(CheckpointError):
  """A checkpoint's arrays have other shapes than the config builds (saved and wanted kept)."""

  def __init__(self, message: str, saved: dict, wanted: dict):
    super().__init__(message)
    self.saved, self.wanted = saved, wanted


class DamagedCheckpoint(CheckpointError):
  """One checkpoint is unreadable or fails its checksums."""

  def __init__(self, step: int, why: str):
    super().__init__(f"checkpoint {step} is damaged ({why})")
    self.step, self.why = step, why


def _first_line(error: BaseException) -> str:
  """'Type: first line' of an error, without TensorStore's spec dump."""
  lines = [line.strip() for line in str(error).splitlines() if line.strip()]
  text = re.split(r"\.? See full TensorStore details", lines[0] if lines else "")[0]
  return f"{type(error).__name__}: {text[:160]}" if text else type(error).__name__


def _sentence(text: str) -> str:
  return text[:1].upper() + text[1:]


def _read_debris(unraisable: Any) -> bool:
  """Whether an unraisable error is what a failed Orbax read leaves behind."""
  text = str(unraisable.exc_value)
  return "Event loop is closed" in text or "Encountered error while reading array" in text


class _DebrisFilter(logging.Filter):
  def filter(self, record: logging.LogRecord) -> bool:
    return "Encountered error while reading array" not in record.getMessage()


def _quiet_read_debris() -> None:
  """A failed read leaves Orbax coroutines unawaited, futures unretrieved and callbacks aimed at
  its closed event loop; their tracebacks, printed whenever they are collected (exit included),
  go to the debug log instead of the terminal. Other errors still reach the previous hooks."""
  previous = sys.unraisablehook
  if getattr(previous, "p2p_read_debris", False):
    return
  logging.getLogger("asyncio").addFilter(_DebrisFilter())

  def hook(unraisable: Any) -> None:
    if _read_debris(unraisable):
      logging.debug("Ignored after a failed checkpoint read: %s", unraisable.exc_value)
    else:
      previous(unraisable)

  hook.p2p_read_debris = True
  sys.unraisablehook = hook


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
                       "config": ocp.JsonCheckpointHandler(),
                       "checksums": ocp.JsonCheckpointHandler()})
    self.checksum_seconds = 0.0  # time spent hashing in save(), for benchmarks

  def latest_step(self) -> int | None:
    """The newest complete checkpoint's step, or None."""
    return self._manager.latest_step()

  def all_steps(self) -> list[int]:
    """Steps of every complete checkpoint, oldest first."""
    return sorted(self._manager.all_steps())

  def damaged_steps(self) -> list[str]:
    """Names of the checkpoints moved to checkpoints/corrupt/."""
    folder = self.directory / CORRUPT
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []

  def save(self, step: int, state: Any, data_iter: Any, config: dict) -> None:
    """Writes a checkpoint (synchronously: the state is donated to the next step)."""
    if step in self._manager.all_steps():
      return
    tick = time.perf_counter()
    sums = checksums(state)
    self.checksum_seconds += time.perf_counter() - tick
    self._manager.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state), data=grain.checkpoint.CheckpointSave(data_iter),
        config=ocp.args.JsonSave(config), checksums=ocp.args.JsonSave(sums)), force=True)
    self._manager.wait_until_finished()

  def read_config(self, step: int | None = None) -> dict:
    """The config a checkpoint was written with (default: the newest)."""
    step = self._step(step)
    try:
      return self._manager.restore(step, args=ocp.args.Composite(
          config=ocp.args.JsonRestore()))["config"]
    except Exception as e:  # noqa: BLE001 - any failure to read it is damage
      raise DamagedCheckpoint(step, f"its config is unreadable: {_first_line(e)}") from None

  def saved_shapes(self, step: int) -> dict[str, tuple[tuple[int, ...], str]]:
    """{array name: (shape, dtype)} of a checkpoint's state, from its metadata."""
    try:
      return shapes(self._manager.item_metadata(step)["state"])
    except Exception as e:  # noqa: BLE001
      raise DamagedCheckpoint(step, f"its metadata is unreadable: {_first_line(e)}") from None

  def restore(self, abstract_state: Any, step: int | None = None,
              data_iter: Any = None) -> tuple[Any, dict]:
    """(state, config) of a step (default: the newest), verified against its checksums.

    Also repositions data_iter if given. Raises DamagedCheckpoint if anything fails to read or
    an array's checksum differs; IncompatibleCheckpoint if the saved arrays have other shapes.
    """
    step = self._step(step)
    self._check_shapes(step, abstract_state)
    has_sums = (self.directory / str(step) / "checksums").is_dir()
    items = {"state": ocp.args.StandardRestore(abstract_state), "config": ocp.args.JsonRestore()}
    if has_sums:
      items["checksums"] = ocp.args.JsonRestore()
    _quiet_read_debris()  # before: a failing read reports its debris while it fails
    try:
      restored = self._manager.restore(step, args=ocp.args.Composite(**items))
    except Exception as e:  # noqa: BLE001 - Orbax/TensorStore raise many types for bad files
      gc.collect()
      raise DamagedCheckpoint(step, f"unreadable: {_first_line(e)}") from None
    if has_sums:
      bad = mismatches(restored["checksums"], restored["state"])
      if bad:
        raise DamagedCheckpoint(step, f"{len(bad)} array(s) fail their checksum: "
                                      f"{', '.join(bad[:3])}{', ...' if len(bad) > 3 else ''}")
    else:
      logging.warning("Checkpoint %d has no checksums (written by an older p2p); not verified.",
                      step)
    if data_iter is not None:
      self._restore_data(step, data_iter)
    return restored["state"], restored["config"]

  def _check_shapes(self, step: int, abstract_state: Any) -> None:
    saved, wanted = self.saved_shapes(step), shapes(abstract_state)
    if saved != wanted:
      differ = sorted(k for k in set(saved) | set(wanted) if saved.get(k) != wanted.get(k))
      raise IncompatibleCheckpoint(
          f"checkpoint {step} in {self.directory} holds other arrays than this config builds "
          f"({len(differ)} differ, e.g. {differ[0]}: saved {saved.get(differ[0])}, now "
          f"{wanted.get(differ[0])}); resume with the run's own config or start a new --workdir.",
          saved, wanted)

  def _restore_data(self, step: int, data_iter: Any) -> None:
    mine = (self.directory / str(step) / "data" /
            f"process_{jax.process_index()}-of-{jax.process_count()}.json")
    if not mine.exists():  # written by another number of processes
      logging.warning("No data position for this process in checkpoint %d; resuming the "
                      "data at batch %d, the step.", step, step)
      try:
        data_iter.set_state({"next_index": step})
      except (KeyError, TypeError, ValueError):  # worker processes keep another state format
        logging.warning("Could not reposition the data; it restarts from the epoch's start.")
      return
    try:
      self._manager.restore(step, args=ocp.args.Composite(
          data=grain.checkpoint.CheckpointRestore(data_iter)))
    except Exception as e:  # noqa: BLE001
      raise DamagedCheckpoint(step, f"its data position {mine.name} is unreadable: "
                                    f"{_first_line(e)}") from None

  def newest_intact(self, attempt: Callable[[int], T], *, quarantine: bool) -> tuple[int, T]:
    """(step, attempt(step)) for the newest checkpoint that attempt reads without damage.

    Damaged ones are logged in one line each and, with quarantine, moved to corrupt/ (all
    processes agree first). With no intact checkpoint left: one CheckpointError.
    """
    damaged = []
    for step in sorted(self.all_steps(), reverse=True):
      error, result = None, None
      try:
        result = attempt(step)
      except DamagedCheckpoint as e:
        error = e
      if distributed.any_process(error is not None):
        error = error or DamagedCheckpoint(step, "damaged as another process read it")
        damaged.append(step)
        if quarantine:
          where = self._quarantine(step)
          logging.warning("%s; moved it to %s and fall back to the previous one.",
                          _sentence(str(error)), where)
        else:
          logging.warning("%s; using the previous one.", _sentence(str(error)))
        continue
      if damaged:
        logging.warning("Using checkpoint %d (the newest intact one).", step)
      return step, result
    raise self.no_intact(damaged)

  def no_intact(self, damaged: list[int] | None = None) -> CheckpointError:
    """The error for a run folder that has no intact checkpoint left."""
    moved = self.damaged_steps()
    parts = []
    if damaged:
      parts.append(f"checkpoint(s) {', '.join(map(str, sorted(damaged)))} are damaged")
    if moved:
      parts.append(f"{self.directory / CORRUPT} holds damaged checkpoint(s) "
                   f"{', '.join(moved)}")
    return CheckpointError(
        f"No intact checkpoint in {self.directory}: {'; '.join(parts) or 'none was found'}. "
        f"Copy intact checkpoints back from a backup, or delete {self.directory} (or use a new "
        f"--workdir) to start over.")

  def _quarantine(self, step: int) -> Path:
    """Moves a step's folder to corrupt/<step>/ (process 0; every process waits)."""
    target = self.directory / CORRUPT / str(step)
    n = 1
    while target.exists():
      target = self.directory / CORRUPT / f"{step}.{n}"
      n += 1
    distributed.barrier(f"p2p_quarantine_{step}_start")
    if jax.process_index() == 0:
      target.parent.mkdir(parents=True, exist_ok=True)
      shutil.move(self.directory / str(step), target)
    distributed.barrier(f"p2p_quarantine_{step}_done")
    self._manager.reload()
    return target

  def _step(self, step: int | None) -> int:
    step = self.latest_step() if step is None else step
    if step is None:
      raise no_checkpoint(self.directory, self.directory.parent)
    return step

  def close(self) -> None:
    """Waits for pending writes and releases the manager."""
    self._manager.wait_until_finished()
    self._manager.close()
