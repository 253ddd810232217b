"""p2p-train --config=configs/rf70_patches.py --workdir=runs/rf70: train or resume (python -m p2p.main)."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from pathlib import Path

from absl import flags
from ml_collections import config_flags

from p2p import cli

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Experiment config file, e.g. configs/rf70_patches.py or ...py:tiny.",
    lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Run folder: checkpoints, metrics, samples. "
                               "An existing one is resumed.")
_PROGRESS = flags.DEFINE_bool("progress", True, "Show a progress bar on a terminal.")
_COORDINATOR = flags.DEFINE_string("coordinator_address", "", "Multi-host: process 0's HOST:PORT "
                                   "(SLURM and Open MPI are detected without it).")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", 0, "Multi-host: number of processes.")
_PROCESS_ID = flags.DEFINE_integer("process_id", -1, "Multi-host: this process's id.")
_CACHE = flags.DEFINE_string("compilation_cache_dir", cli.default_cache_dir(),
                             "Persistent XLA compilation cache ('' = off): resumed and repeated "
                             "runs start in about a second instead of compiling again.")
_PEER_TIMEOUT = flags.DEFINE_integer("peer_timeout", 60, "Multi-host: seconds after which a "
                                     "silent peer process counts as lost; every other process "
                                     "then stops, naming it (relaunch to resume).")
flags.mark_flags_as_required(["config", "workdir"])


def last_complete_checkpoint(workdir: str) -> str:
  """'step N' of the newest finished checkpoint folder (a directory scan), or 'none'."""
  steps = [int(p.name) for p in (Path(workdir) / "checkpoints").glob("*")
           if p.name.isdigit() and (p / "_CHECKPOINT_METADATA").exists()]
  return f"step {max(steps)}" if steps else "none"


def lost_peer_message(workdir: str, num_processes: int) -> Callable[[list[int]], str]:
  """The one line a process prints when peers are gone."""
  def message(lost: list[int]) -> str:
    names = ", ".join(str(i) for i in lost)
    return (f"lost process {names} of {num_processes} (killed, crashed or unreachable for "
            f"--peer_timeout={_PEER_TIMEOUT.value} s); this process stops too. Relaunch every "
            f"process with the same command: the run resumes from its last complete "
            f"checkpoint ({last_complete_checkpoint(workdir)} now).")
  return message


def main(argv: list[str]) -> None:
  """Validates the config, then trains."""
  cli.check_args(argv)
  cli.quiet_library_logs()
  cli.use_compilation_cache(_CACHE.value)
  from p2p.train import distributed
  try:
    distributed.initialize(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value,
                           _PEER_TIMEOUT.value)
  except ValueError as e:
    cli.fail(str(e))
  import jax
  watch = None
  if jax.process_count() > 1:
    from p2p.train.peers import PeerWatch
    watch = PeerWatch(jax.process_count(),
                      lost_peer_message(_WORKDIR.value, jax.process_count())).start()
  if jax.process_index() > 0:
    logging.getLogger().setLevel(logging.WARNING)  # process 0 reports for everyone
  from p2p.config import train_config
  from p2p.train.loop import train_and_evaluate
  config = train_config(cli.config_value(_CONFIG))  # expected failures: one line, exit 2
  cli.check_writable(_WORKDIR.value, "--workdir", folder=True)
  try:
    result = train_and_evaluate(config, _WORKDIR.value,
                                progress=_PROGRESS.value and sys.stderr.isatty())
  except jax.errors.JaxRuntimeError:  # e.g. a collective whose peer is gone (gloo)
    if watch is not None and watch.wait_for_loss(_PEER_TIMEOUT.value + 10):
      watch.exit()  # say which peer, instead of the collective's traceback
    raise
  if watch is not None:
    watch.stop()
  if jax.process_index() > 0:
    return
  done = {"finished": "Training finished", "max_steps": "Stopped at max_steps",
          "preempted": "Preempted; run the same command again to resume"}[result.reason]
  print(f"{done} at step {result.step}. Checkpoint: step {result.last_checkpoint} in "
        f"{result.workdir / 'checkpoints'}\nSamples: {result.workdir / 'samples'}\n"
        f"Metrics: {result.workdir / 'metrics.jsonl'}, {result.workdir / 'loss_curve.png'}")


def run() -> None:
  """The p2p-train console script."""
  cli.run(main, tune_malloc=True)


if __name__ == "__main__":
  run()
