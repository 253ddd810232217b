"""Data parallelism with jit + Mesh + NamedSharding: replicated state, batch split over devices."""

from __future__ import annotations

from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

DATA_AXIS = "data"


def make_mesh(devices: list | None = None) -> Mesh:
  """A 1-D mesh over every device of every process, along the data axis."""
  devices = jax.devices() if devices is None else devices
  return Mesh(np.asarray(devices), (DATA_AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
  """The same full copy on every device (parameters, optimizer state)."""
  return NamedSharding(mesh, P())


def batch_sharding(mesh: Mesh, stacked: bool = False) -> NamedSharding:
  """Batch dimension split over the data axis: the leading one, or the second when stacked."""
  return NamedSharding(mesh, P(None, DATA_AXIS) if stacked else P(DATA_AXIS))


def check_batch_size(global_batch: int, mesh: Mesh) -> None:
  """The global batch must split evenly over devices and processes."""
  devices, processes = mesh.devices.size, jax.process_count()
  if global_batch % devices or global_batch % processes:
    raise ValueError(f"batch_size={global_batch} must be a multiple of the {devices} devices "
                     f"({processes} processes); set --config.batch_size accordingly.")


def global_batch(local: dict[str, np.ndarray], mesh: Mesh,
                 stacked: bool = False) -> dict[str, jax.Array]:
  """One global array per key from this process's share of the batch (or K x batch stack)."""
  sharding = batch_sharding(mesh, stacked)
  return {k: jax.make_array_from_process_local_data(sharding, np.asarray(v))
          for k, v in local.items()}


def with_sharding(abstract: Any, sharding: NamedSharding) -> Any:
  """ShapeDtypeStructs carrying a sharding (restore and jit targets)."""
  return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding),
                      abstract)
