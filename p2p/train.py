"""The training loop: dispatch steps, log one step late, validate, checkpoint, handle preemption."""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import flax.linen as nn
import jax
import numpy as np
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from p2p import distributed, hostmem, parallel
from p2p.checkpoint import Checkpointer
from p2p.config import ConfigError, TrainConfig
from p2p.data.errors import DataError
from p2p.data.pipeline import eval_dataset, make_iterator, make_split, train_dataset
from p2p.data.resident import ResidentIterator
from p2p.images import triplets
from p2p.inference import Generator, sample
from p2p.preemption import PreemptionGuard
from p2p.state import (TrainState, abstract_state, build_networks, create_train_state,
                       generator_params)
from p2p.step import compile_step, precompile
from p2p.writers import Writer, create_writer


class NonFiniteLoss(RuntimeError):
  """A loss became NaN or infinite; the run stopped without saving the bad state."""


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


class MetricsLogger:
  """Fetches each step's metrics (one step late), checks them, averages them between logs."""

  def __init__(self, writer: Writer, every: int, batch_size: int):
    self.writer, self.every, self.batch_size = writer, every, batch_size
    self.sums: dict[str, float] = {}
    self.count = 0
    self.last: dict[str, float] = {}
    self.tick = time.perf_counter()
    self.images_per_s = 0.0

  def consume(self, step: int, metrics: dict[str, jax.Array], steps: int = 1) -> None:
    """Takes the metrics of the call that ended at `step` (stacked when it ran several steps).

    Raises NonFiniteLoss if any is NaN or infinite.
    """
    host = jax.device_get(metrics)
    for i in range(steps):
      at = step - steps + 1 + i
      values = {k: float(v[i] if steps > 1 else v) for k, v in host.items()}
      bad = {k: v for k, v in values.items() if not math.isfinite(v)}
      if bad:
        raise NonFiniteLoss(f"Non-finite loss at step {at}: {bad}.")
      self.last = values
      self.count += 1
      for k, v in values.items():
        self.sums[k] = self.sums.get(k, 0.0) + v
      if at % self.every == 0:
        self.flush(at)

  def flush(self, step: int) -> None:
    """Writes the averages since the last flush, with images/s over that stretch."""
    if not self.count:
      return
    now = time.perf_counter()
    self.images_per_s = self.count * self.batch_size / max(now - self.tick, 1e-9)
    scalars = {k: v / self.count for k, v in self.sums.items()}
    scalars["perf/images_per_s"] = self.images_per_s
    self.writer.write_scalars(step, scalars)
    self.writer.flush()
    logging.info("step %d: %s", step, ", ".join(f"{k}={v:.4g}" for k, v in scalars.items()))
    self.sums, self.count, self.tick = {}, 0, now

  def summary(self) -> str:
    """The latest losses, short, for the progress bar."""
    v = self.last
    return (f"G {v['total_gen_loss']:.3f}  L1 {v['l1_loss']:.4f}  D {v['total_disc_loss']:.3f}"
            if v else "")


VAL_CHUNK = 4  # val images per sampler call: 16 at once added ~0.5 GB to a full-size run's peak


class Validator:
  """val_l1 and a sample grid (input | generated | target) on the first val examples."""

  def __init__(self, config: TrainConfig, generator: nn.Module, writer: Writer):
    self.config, self.generator, self.writer = config, generator, writer
    self.examples = _load_eval_examples(config)
    self.history: list[tuple[int, float]] = []

  def __call__(self, state: TrainState, step: int, epoch: float) -> None:
    if self.examples is None:
      return
    x, y = self.examples["input"], self.examples["target"]
    gen = Generator(self.generator, {"params": generator_params(state),
                                     "batch_stats": state.g.batch_stats}, x.shape[1])
    fake = sample(gen, x, rng=jax.random.PRNGKey(self.config.seed), chunk=VAL_CHUNK)  # paper mode
    l1 = float(np.abs(fake - y).mean())
    self.history.append((step, l1))
    self.writer.write_scalars(step, {"val_l1": l1})
    n = self.config.num_sample_images
    self.writer.write_image(step, "val_samples", triplets(x[:n], fake[:n], y[:n]))
    self.writer.flush()
    logging.info("step %d (epoch %.2f): val_l1 %.4f", step, epoch, l1)


def _load_eval_examples(config: TrainConfig) -> dict[str, np.ndarray] | None:
  """The first eval_examples validation examples, in file order (None if there is no val)."""
  try:
    split = make_split(config.data, "val", equal_shards=False)
  except DataError as e:  # A dataset without val/ still trains.
    logging.warning("No validation examples (%s); skipping val_l1 and samples.", e)
    return None
  ds = eval_dataset(config.data, split, batch_size=1)
  count = min(max(config.eval_examples, config.num_sample_images), len(ds))
  rows = [ds[i] for i in range(count)]
  return {k: np.concatenate([r[k] for r in rows]) for k in ("input", "target")}


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
  """The compiled steps of a run, and which one a call at a given step uses."""

  single: Callable
  multi: Callable | None = None  # steps_per_call > 1
  r1: Callable | None = None  # lazy R1 (optim.r1_every > 1): the single step that adds it
  r1_every: int = 1

  def pick(self, step: int, n: int) -> Callable:
    """The function for a call of n steps starting at `step` (the state's step count)."""
    if n > 1:
      return self.multi
    if self.r1 is not None and step % self.r1_every == 0:
      return self.r1
    return self.single


def _compile_steps(config: TrainConfig, nets: Any, mesh: Any, abstract: TrainState) -> StepFns:
  """The single step, the K-step call and the lazy-R1 step, compiled before any state exists.

  Lazy R1 on single steps gets two programs, with and without the term, picked by the host:
  XLA:CPU runs a lax.cond's R1 branch ~5x slower. K-step calls keep the lax.cond.
  Then hands the compiler's scratch back to the OS, so the state's buffers reuse those pages.
  """
  k, optim = config.steps_per_call, config.optim
  lazy = optim.r1_gamma > 0 and optim.r1_every > 1

  def compiled(steps: int = 1, r1: bool | None = None) -> Callable:
    return precompile(compile_step(nets, config, mesh, steps, r1), abstract, config, mesh, steps)

  fns = StepFns(compiled(r1=False if lazy else None), compiled(k) if k > 1 else None,
                compiled(r1=True) if lazy else None, optim.r1_every)
  hostmem.trim_heap()
  return fns


def _restore_or_create(config: TrainConfig, nets: Any, mesh: Any, ckpt: Checkpointer,
                       data_iter: Any, config_dict: dict, abstract: TrainState) -> TrainState:
  """The newest checkpoint's state (and data position) if there is one, else a fresh state."""
  if ckpt.latest_step() is None:
    return create_train_state(nets, config, mesh)
  saved_ema = float(ckpt.read_config().get("optim", {}).get("ema_decay", 0.0))
  if bool(saved_ema) != bool(config.optim.ema_decay):
    raise ConfigError(f"{ckpt.directory} was trained with optim.ema_decay={saved_ema}, so its "
                      f"state {'has a' if saved_ema else 'has no'} weight average; resume with "
                      f"--config.optim.ema_decay={saved_ema or 0} or start a new --workdir.")
  state, saved_config = ckpt.restore(abstract, data_iter=data_iter)
  _warn_config_changes(saved_config, config_dict)
  logging.info("Resumed from %s at step %d.", ckpt.directory, int(state.step))
  return state


def train_and_evaluate(config: TrainConfig, workdir: str | Path, *,
                       on_step: Callable[[int], None] | None = None,
                       progress: bool = True) -> RunResult:
  """Trains (resuming from workdir if it holds a checkpoint) and returns how the run ended."""
  workdir = Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  mesh = parallel.make_mesh()
  parallel.check_batch_size(config.batch_size, mesh)
  local_batch = config.batch_size // jax.process_count()
  split = make_split(config.data, "train", process_index=jax.process_index(),
                     process_count=jax.process_count())
  schedule = _schedule(config, split.num_examples, local_batch)
  if config.data.resident:
    data_iter = ResidentIterator(config.data, split, batch_size=local_batch, seed=config.seed,
                                 mesh=mesh)
  else:
    data_iter = make_iterator(config.data, train_dataset(
        config.data, split, batch_size=local_batch, seed=config.seed))
  nets = build_networks(config, schedule.steps_per_epoch)
  config_dict = dataclasses.asdict(config)
  ckpt = Checkpointer(workdir, config.max_checkpoints_to_keep)
  try:
    latest = ckpt.latest_step()
    if latest is not None and latest >= schedule.total_steps:
      logging.info("%s already holds the final step %d; nothing to train.", workdir, latest)
      return RunResult(latest, schedule.reason(latest), workdir, latest, [])
    abstract = parallel.with_sharding(abstract_state(nets, config.data.image_size),
                                      parallel.replicated(mesh))  # fresh or restored
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
      return RunResult(step, reason, workdir, ckpt.latest_step(), validate.history)
    except NonFiniteLoss as e:
      last = ckpt.latest_step()
      raise NonFiniteLoss(
          f"{e} Training stopped without saving; the last good checkpoint is "
          f"{'step ' + str(last) if last is not None else 'none'} in {ckpt.directory}. "
          f"Lower optim.learning_rate or check the data, then run again to resume.") from None
    finally:
      writer.close()
  finally:
    ckpt.close()
    data_iter.close()


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
        state, metrics = step_fns.pick(step, n)(state, _fetch(data_iter, n, mesh))
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


def _warn_config_changes(saved: dict, current: dict, prefix: str = "") -> None:
  """Logs every field that differs between the checkpoint's config and this run's."""
  for key in sorted(set(saved) | set(current)):
    a, b = saved.get(key), current.get(key)
    if isinstance(a, dict) and isinstance(b, dict):
      _warn_config_changes(a, b, f"{prefix}{key}.")
    elif a != b:
      logging.warning("Config %s%s changed since the checkpoint: %r -> %r.", prefix, key, a, b)
