"""The training loop: dispatch steps, log one step late, validate, checkpoint, handle preemption."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import numpy as np
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from p2p.config import TrainConfig
from p2p.data.pipeline import make_iterator, make_split, resolve, train_dataset
from p2p.data.resident import ResidentIterator
from p2p.ops import autotune
from p2p.train import distributed, hostmem, parallel, peers
from p2p.train.checkpoint import Checkpointer, CheckpointError
from p2p.train.monitor import MetricsLogger, NonFiniteLoss, Validator
from p2p.train.preemption import PreemptionGuard
from p2p.train.resume import newest_usable_step, restore_run
from p2p.train.state import TrainState, abstract_state, build_networks, create_train_state
from p2p.train.step import compile_step, precompile
from p2p.train.writers import Writer, create_writer


@dataclasses.dataclass
class RunResult:
  """How a run ended: its last step, why it stopped, and where things are."""

  step: int
  reason: str  # finished | max_steps | preempted
  workdir: Path
  last_checkpoint: int | None
  val_l1: list[tuple[int, float]]


@dataclasses.dataclass(frozen=True)
class Schedule:
  """How many steps make an epoch and the run, for this process's share of the data."""

  steps_per_epoch: int
  total_steps: int
  num_epochs: int

  def reason(self, step: int) -> str:
    """Why a run that reached `step` is over: all epochs done, or max_steps."""
    return "finished" if step == self.num_epochs * self.steps_per_epoch else "max_steps"


def _progress(enabled: bool) -> Progress:
  return Progress(TextColumn("[bold]epoch {task.fields[epoch]}"), BarColumn(),
                  MofNCompleteColumn(), TextColumn("{task.fields[speed]:.2f} img/s"),
                  TextColumn("{task.fields[losses]}"), TimeRemainingColumn(),
                  disable=not enabled, transient=False)


def _schedule(config: TrainConfig, num_examples: int, local_batch: int) -> Schedule:
  steps_per_epoch = num_examples // local_batch
  if steps_per_epoch == 0:
    raise ValueError(f"batch_size={config.batch_size} is larger than the "
                     f"{num_examples * jax.process_count()} training examples.")
  total = config.num_epochs * steps_per_epoch
  return Schedule(steps_per_epoch, min(total, config.max_steps) if config.max_steps else total,
                  config.num_epochs)


@dataclasses.dataclass(frozen=True)
class StepFns:
  """The compiled steps of a run, and which one a call of n steps uses."""

  single: Callable
  multi: Callable | None = None  # steps_per_call > 1

  def pick(self, n: int) -> Callable:
    """The function for a call of n steps."""
    return self.multi if n > 1 else self.single


def _compile_steps(config: TrainConfig, nets: Any, mesh: Any, abstract: TrainState) -> StepFns:
  """The single step and the K-step call, compiled before any state exists.

  Then hands the compiler's scratch back to the OS, so the state's buffers reuse those pages.
  """
  k = config.steps_per_call

  def compiled(steps: int = 1) -> Callable:
    return precompile(compile_step(nets, config, mesh, steps), abstract, config, mesh, steps)

  fns = StepFns(compiled(), compiled(k) if k > 1 else None)
  hostmem.trim_heap()
  return fns


def _restore_or_create(config: TrainConfig, nets: Any, mesh: Any, ckpt: Checkpointer,
                       data_iter: Any, config_dict: dict, abstract: TrainState) -> TrainState:
  """The newest intact checkpoint's state (and data position) if there is one, else a fresh state.

  A run folder whose only checkpoints were found damaged never silently starts over.
  """
  if ckpt.latest_step() is None:
    if ckpt.damaged_steps():
      raise ckpt.no_intact()
    return create_train_state(nets, config, mesh)
  return restore_run(ckpt, abstract, config_dict, data_iter)


def train_and_evaluate(config: TrainConfig, workdir: str | Path, *,
                       on_step: Callable[[int], None] | None = None,
                       progress: bool = True) -> RunResult:
  """Trains (resuming from workdir if it holds a checkpoint) and returns how the run ended."""
  workdir = Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  mesh = parallel.make_mesh()
  parallel.check_batch_size(config.batch_size, mesh)
  local_batch = config.batch_size // jax.process_count()
  data, scan = resolve(config.data)  # the data's layout, channels and ranges, recorded
  config = dataclasses.replace(config, data=data)
  split = make_split(config.data, "train", process_index=jax.process_index(),
                     process_count=jax.process_count(), scan=scan)
  schedule = _schedule(config, split.num_examples, local_batch)
  if config.data.resident:
    data_iter = ResidentIterator(config.data, split, batch_size=local_batch, seed=config.seed,
                                 mesh=mesh)
  else:
    data_iter = make_iterator(config.data, train_dataset(
        config.data, split, batch_size=local_batch, seed=config.seed))
  choice = autotune.agree(autotune.resolve(config.compute_dtype, workdir))
  autotune.log(choice)
  if jax.process_index() == 0:
    autotune.record(workdir, choice)
  nets = build_networks(config, schedule.steps_per_epoch)
  config_dict = dataclasses.asdict(config)
  ckpt = Checkpointer(workdir, config.max_checkpoints_to_keep)
  try:
    abstract = parallel.with_sharding(abstract_state(nets, config.data.image_size,
                                                     config.data.model_channels()),
                                      parallel.replicated(mesh))  # fresh or restored
    latest = ckpt.latest_step()
    if latest is not None and latest >= schedule.total_steps and (
        newest_usable_step(ckpt, abstract, config_dict) >= schedule.total_steps):
      logging.info("%s already holds the final step %d; nothing to train.", workdir, latest)
      return RunResult(latest, schedule.reason(latest), workdir, latest, [])
    step_fns = _compile_steps(config, nets, mesh, abstract)
    state = _restore_or_create(config, nets, mesh, ckpt, data_iter, config_dict, abstract)
    hostmem.trim_heap()  # and the initialiser's (or the restore's) scratch
    writer = create_writer(workdir, config.wandb, config_dict, resume_step=int(state.step),
                           is_main_process=jax.process_index() == 0)
    validate = Validator(config, nets.generator, writer)
    try:
      step, reason = _loop(config, schedule, state, data_iter, step_fns, validate, writer, mesh,
                           lambda step, state: ckpt.save(step, state, data_iter, config_dict),
                           on_step, progress)
      distributed.barrier("p2p_train_end")
      peers.run_ended()
      return RunResult(step, reason, workdir, ckpt.latest_step(), validate.history)
    except NonFiniteLoss as e:
      raise NonFiniteLoss(
          f"{e} Training stopped without saving; the last good checkpoint is "
          f"{_newest_verified(ckpt, abstract)} in {ckpt.directory}. Lower "
          f"optim.learning_rate or check the data, then run again to resume from it.") from None
    finally:
      writer.close()
  finally:
    ckpt.close()
    data_iter.close()


def _newest_verified(ckpt: Checkpointer, abstract: TrainState) -> str:
  """'step N' for the newest checkpoint that restores and passes its checksums, or 'none'.

  Damaged ones are moved aside, so that the resume this message asks for starts from step N.
  """
  if ckpt.latest_step() is None:
    return "none"
  try:
    return f"step {ckpt.newest_intact(lambda s: ckpt.restore(abstract, s), quarantine=True)[0]}"
  except CheckpointError:
    return "none (every checkpoint is damaged)"


def _steps_this_call(step: int, steps_per_call: int, steps_per_epoch: int, total: int) -> int:
  """steps_per_call, or 1 near an epoch end or the run's end (those fall on exact steps)."""
  left = min(steps_per_epoch - step % steps_per_epoch, total - step)
  return steps_per_call if steps_per_call <= left else 1


def _stack(batches: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
  """K batches -> one dict of K x batch arrays."""
  return {k: np.stack([b[k] for b in batches]) for k in batches[0]}


def _fetch(data_iter: Any, n: int, mesh: Any) -> dict[str, jax.Array]:
  """The next n steps' global batch (K x batch when n > 1): gathered on the device, or Grain's."""
  if isinstance(data_iter, ResidentIterator):
    return data_iter.fetch(n)
  if n == 1:
    return parallel.global_batch(next(data_iter), mesh)
  return parallel.global_batch(_stack([next(data_iter) for _ in range(n)]), mesh, True)


def _loop(config: TrainConfig, schedule: Schedule, state: TrainState, data_iter: Any,
          step_fns: StepFns, validate: Validator, writer: Writer, mesh: Any,
          save: Callable[[int, TrainState], None], on_step: Callable[[int], None] | None,
          progress: bool) -> tuple[int, str]:
  """Steps until the schedule ends or a preemption signal arrives; saves on the way out."""
  step = int(state.step)
  spe = schedule.steps_per_epoch
  logger = MetricsLogger(writer, config.log_every_steps, config.batch_size)
  if step == 0:
    validate(state, step, 0.0)  # the untrained baseline: every run shows how far val L1 fell
  reason, pending = "preempted", None
  with PreemptionGuard() as guard, _progress(progress and jax.process_index() == 0) as bar:
    task = bar.add_task("train", total=schedule.total_steps, completed=step,
                        epoch=step // spe + 1, speed=0.0, losses="")
    try:
      while step < schedule.total_steps:
        n = _steps_this_call(step, config.steps_per_call, spe, schedule.total_steps)
        state, metrics = step_fns.pick(n)(state, _fetch(data_iter, n, mesh))
        step += n
        if pending is not None:  # the previous call's metrics, while this one runs
          logger.consume(*pending)
          bar.update(task, completed=step - n, epoch=(step - n) // spe + 1,
                     speed=logger.images_per_s, losses=logger.summary())
        pending = (step, metrics, n)
        if on_step is not None:
          on_step(step)
        epoch_done = step % spe == 0
        stop = _stop_requested(guard.requested, step, epoch_done, schedule.total_steps)
        if epoch_done or stop or step == schedule.total_steps:
          logger.consume(*pending)  # checked before anything is saved
          pending = None
          bar.update(task, completed=step, speed=logger.images_per_s, losses=logger.summary())
        if epoch_done:
          writer.write_scalars(step, {"epoch": step // spe})
          validate(state, step, step / spe)
          if (step // spe) % config.checkpoint_every_epochs == 0:
            save(step, state)
        if stop:
          break
      else:
        reason = schedule.reason(step)
        if step % spe:
          validate(state, step, step / spe)  # a run that stops mid-epoch still ends with a sample
      logger.flush(step)
      save(step, state)
    except NonFiniteLoss:
      raise
    except Exception:
      if jax.process_count() == 1:  # a save needs every process; others may be gone
        _save_after_crash(step, state, pending, logger, save)
      raise
  return step, reason


PREEMPTION_SYNC_STEPS = 10  # multi-process: how often all processes agree on stopping


def _stop_requested(requested: bool, step: int, epoch_done: bool, total_steps: int) -> bool:
  """Whether to stop now; with several processes, all of them decide together (a collective).

  A signal may reach only some hosts, so processes compare flags every PREEMPTION_SYNC_STEPS
  steps and at epoch ends, and stop at the same step.
  """
  if jax.process_count() == 1:
    return requested
  if step % PREEMPTION_SYNC_STEPS and not epoch_done and step != total_steps:
    return False
  return distributed.any_process(requested)


def _save_after_crash(step: int, state: TrainState, pending: tuple | None, logger: MetricsLogger,
                      save: Callable[[int, TrainState], None]) -> None:
  """Best effort: keep the progress since the last checkpoint if the state is intact and finite.

  Errors outside the step (a corrupt image found mid-epoch, a full disk for samples) leave the
  state whole; one raised inside the step has consumed its donated input, so nothing is saved.
  """
  try:
    if pending is not None:
      logger.consume(*pending)
    if any(leaf.is_deleted() for leaf in jax.tree.leaves(state)):
      return
    save(step, state)
    logging.error("Saved step %d before stopping on the error below; fix it and run the same "
                  "command to resume.", step)
  except Exception as e:  # noqa: BLE001 - the original error is the one to report.
    logging.error("Could not save step %d after the error (%s).", step, e)
