"""Checksums of a checkpoint's arrays: xxh3-64 of each array's bytes, keyed by its dotted name.

Saved beside every checkpoint and compared on every restore, so a truncated or bit-flipped file
is caught even where the storage format decodes it without complaint. The state is replicated
on every device, so each process hashes its own first copy (host memory on CPU: no copy).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import jax
import numpy as np
import xxhash


def leaf_name(path: tuple) -> str:
  """'g.params.down_1.kernel': a pytree path as Orbax names the array in its metadata."""
  parts = []
  for key in path:
    for attr in ("name", "key", "idx"):
      if hasattr(key, attr):
        parts.append(str(getattr(key, attr)))
        break
  return ".".join(parts)


def host_copy(leaf: Any) -> np.ndarray:
  """One process-local copy of an array as numpy (zero-copy for CPU arrays)."""
  if isinstance(leaf, jax.Array):
    if not leaf.is_fully_replicated:
      raise ValueError("checkpoint checksums expect a replicated state (data parallelism).")
    leaf = leaf.addressable_data(0)
  return np.ascontiguousarray(np.asarray(leaf))


def digest(array: np.ndarray) -> str:
  """xxh3-64 (hex) of an array's dtype, shape and bytes."""
  h = xxhash.xxh3_64(f"{array.dtype.str}{array.shape}".encode())
  h.update(memoryview(array).cast("B") if array.size else b"")
  return h.hexdigest()


def checksums(tree: Any) -> dict[str, str]:
  """{dotted name: digest} for every array of a pytree.

  Hashing is memory-bound; two threads (xxhash releases the GIL) take a paper-size state's
  686 MB in ~23 ms instead of ~37 (2-core AMD EPYC).
  """
  named = [(leaf_name(path), host_copy(leaf))
           for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]]
  with ThreadPoolExecutor(min(2, os.cpu_count() or 1)) as pool:
    digests = list(pool.map(digest, [array for _, array in named]))
  return {name: d for (name, _), d in zip(named, digests)}


def mismatches(saved: dict[str, str], tree: Any) -> list[str]:
  """Names of the arrays whose digest differs from the saved one (or that are missing)."""
  now = checksums(tree)
  return sorted(k for k in set(saved) | set(now) if saved.get(k) != now.get(k))


def shapes(tree: Any) -> dict[str, tuple[tuple[int, ...], str]]:
  """{dotted name: (shape, dtype)} of a pytree of arrays, shape structs or Orbax metadata."""
  return {leaf_name(path): (tuple(leaf.shape), np.dtype(leaf.dtype).name)
          for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]}
