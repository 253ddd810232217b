"""Multi-host start-up: jax.distributed before any computation, auto-detected or from flags.

SLURM and Open MPI are detected by JAX itself; elsewhere pass the coordinator ("host:port" of
process 0), the process count and this process's id (flags, or P2P_COORDINATOR_ADDRESS,
P2P_NUM_PROCESSES, P2P_PROCESS_ID). CPU processes talk over gloo (loopback or TCP).
"""

from __future__ import annotations

import logging
import os

import jax
import numpy as np

CLUSTER_SIZE_VARIABLES = ("SLURM_NTASKS", "OMPI_COMM_WORLD_SIZE")


def _env_int(name: str, default: int) -> int:
  value = os.environ.get(name, "")
  return int(value) if value.strip() else default


def detected_cluster() -> bool:
  """True inside a SLURM or Open MPI job of more than one task."""
  return any(_env_int(name, 1) > 1 for name in CLUSTER_SIZE_VARIABLES)


def initialize(coordinator_address: str = "", num_processes: int = 0,
               process_id: int = -1, peer_timeout_s: int = 60) -> bool:
  """Joins the multi-process run if there is one; returns whether it did. Call it first.

  peer_timeout_s: a process that sends no heartbeat for this long counts as lost. Tasks are
  recoverable: a lost peer does not abort the others (peers.PeerWatch stops them, naming it).
  """
  coordinator = coordinator_address or os.environ.get("P2P_COORDINATOR_ADDRESS", "")
  num_processes = num_processes or _env_int("P2P_NUM_PROCESSES", 0)
  process_id = process_id if process_id >= 0 else _env_int("P2P_PROCESS_ID", -1)
  if not coordinator and not detected_cluster():
    if num_processes > 1:
      raise ValueError(f"num_processes={num_processes} needs --coordinator_address=HOST:PORT "
                       f"(process 0's address) and --process_id on every process.")
    return False
  # Cross-process collectives on the CPU backend (harmless for GPU runs).
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  jax.config.update("jax_enable_recoverability", True)
  if coordinator:
    if num_processes < 1 or not 0 <= process_id < num_processes:
      raise ValueError(f"--coordinator_address={coordinator} needs --num_processes >= 1 and "
                       f"0 <= --process_id < num_processes (got {num_processes}, {process_id}).")
    jax.distributed.initialize(coordinator, num_processes=num_processes, process_id=process_id,
                               heartbeat_timeout_seconds=peer_timeout_s)
  else:  # SLURM / Open MPI: everything from the environment
    jax.distributed.initialize(heartbeat_timeout_seconds=peer_timeout_s)
  logging.info("Process %d of %d; %d local and %d global devices.", jax.process_index(),
               jax.process_count(), jax.local_device_count(), jax.device_count())
  return True


def any_process(flag: bool) -> bool:
  """True on every process if `flag` is True on any (a collective: all processes call it)."""
  if jax.process_count() == 1:
    return flag
  from jax.experimental import multihost_utils
  return bool(np.max(multihost_utils.process_allgather(np.int32(flag))))


def barrier(name: str) -> None:
  """Waits until every process reaches this point (no-op for one process)."""
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils
    multihost_utils.sync_global_devices(name)
