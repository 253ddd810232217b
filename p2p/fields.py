"""Dataclass fields that carry a one-line meaning: the config schema documents itself."""

from __future__ import annotations

import dataclasses
from typing import Any


def field(default: Any, doc: str) -> Any:
  """A dataclass field with a default and its meaning (listed in docs/training.md)."""
  return dataclasses.field(default=default, metadata={"doc": doc})

