"""Loading a trained generator from a run folder (p2p.load), old runs' configs included."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import jax

from p2p import compat
from p2p.config import train_config
from p2p.infer.sample import Generator
from p2p.ops import autotune
from p2p.train import parallel
from p2p.train.checkpoint import (Checkpointer, CheckpointError, DamagedCheckpoint,
                                  no_checkpoint)
from p2p.train.state import abstract_state, build_networks, generator_params


def load(workdir: str | os.PathLike, step: int | None = None, ema: bool = True) -> Generator:
  """The generator of a run folder's newest intact checkpoint (or of `step`), verified.

  A damaged newest checkpoint (unreadable, or failing its checksums) is skipped, with one
  warning line, for the newest intact one; the run folder is left as it is. A damaged `step`
  is an error. A run trained with optim.ema_decay > 0 gives its averaged weights unless
  ema=False.
  """
  directory = Path(workdir).resolve() / "checkpoints"
  if not directory.is_dir():  # no folders made for a mistyped path
    raise no_checkpoint(directory, workdir)
  ckpt = Checkpointer(workdir)
  try:
    steps = ckpt.all_steps()
    if not steps:
      raise ckpt.no_intact() if ckpt.damaged_steps() else no_checkpoint(directory, workdir)
    if step is not None and step not in steps:
      raise CheckpointError(f"{ckpt.directory} has no checkpoint of step {step}; it has "
                            f"{sorted(steps)}.")
    if step is None:
      _, (config, nets, state) = ckpt.newest_intact(lambda s: _restore(ckpt, s, workdir),
                                                    quarantine=False)
    else:
      try:
        config, nets, state = _restore(ckpt, step, workdir)
      except DamagedCheckpoint as e:
        raise CheckpointError(f"In {ckpt.directory}, {e}; pick another step of {steps}, or "
                              f"leave the step out for the newest intact one.") from None
  finally:
    ckpt.close()
  ema = ema and state.g_ema is not None
  variables = {"params": generator_params(state, ema), "batch_stats": state.g.batch_stats}
  logging.info("Loaded %s at step %d%s.", workdir, int(state.step), " (EMA weights)" if ema else "")
  return Generator(nets.generator, variables, config.data.image_size, int(state.step), ema,
                   config.data)


def _restore(ckpt: Checkpointer, step: int, workdir: str | os.PathLike) -> tuple[Any, Any, Any]:
  """(config, networks, state) of one checkpoint, restored on one device and verified."""
  config = train_config(compat.upgrade(ckpt.read_config(step), where=str(workdir)))
  autotune.resolve(config.compute_dtype, workdir)  # the run's cached autotune, if this CPU's
  nets = build_networks(config, steps_per_epoch=1)
  one_device = parallel.replicated(parallel.make_mesh(jax.local_devices()[:1]))
  abstract = parallel.with_sharding(abstract_state(nets, config.data.image_size,
                                                   config.data.model_channels()), one_device)
  state, _ = ckpt.restore(abstract, step)  # any device count wrote it; one device reads it
  return config, nets, state
