"""What CPU this is: model, cores and the ISA features that decide p2p's speed.

Speed figures from different machines are only comparable when they name these; every
benchmark's JSON line carries `machine()`.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import platform
from pathlib import Path

# The features that decide which kernels are fastest: AVX-512 (float32 width), bf16 dot
# instructions (AVX512-BF16, VDPBF16PS) and the AMX tile unit with its bf16 dot (AMX-BF16).
FEATURES = ("avx512f", "avx512_bf16", "amx_bf16")


@dataclasses.dataclass(frozen=True)
class CpuInfo:
  """A CPU as /proc/cpuinfo names it."""

  model: str
  cores: int
  family_model: str = ""  # "6/207/2": family, model, stepping (one model name covers many)
  flags: frozenset[str] = frozenset()

  @property
  def key(self) -> str:
    """One string per CPU model and feature set (autotune results are cached under it)."""
    features = ",".join(f for f in FEATURES if f in self.flags) or "no avx512"
    return f"{self.model} [{self.family_model}] {features}".replace("  ", " ")

  def has(self, feature: str) -> bool:
    """Whether the CPU reports this feature flag (as /proc/cpuinfo spells it)."""
    return feature in self.flags

  def features(self) -> dict[str, bool]:
    """FEATURES -> present, for JSON."""
    return {f: self.has(f) for f in FEATURES}


def parse_cpuinfo(text: str, cores: int) -> CpuInfo:
  """The first processor's entry of a /proc/cpuinfo text."""
  fields: dict[str, str] = {}
  for line in text.splitlines():
    if not line.strip():
      if fields:
        break
      continue
    name, _, value = line.partition(":")
    fields.setdefault(name.strip(), value.strip())
  family = "/".join(fields.get(k, "?") for k in ("cpu family", "model", "stepping"))
  return CpuInfo(model=fields.get("model name") or platform.processor() or "unknown CPU",
                 cores=cores, family_model="" if family == "?/?/?" else family,
                 flags=frozenset(fields.get("flags", "").split()))


@functools.cache
def cpu_info() -> CpuInfo:
  """This machine's CPU, read once per process (the platform's processor string where
  /proc/cpuinfo is missing)."""
  cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
  try:
    return parse_cpuinfo(Path("/proc/cpuinfo").read_text(), cores or 1)
  except OSError:
    return CpuInfo(platform.processor() or "unknown CPU", cores or 1)


def cpu_model() -> str:
  """The CPU's model name."""
  return cpu_info().model


def machine() -> dict:
  """The machine fields every benchmark JSON line carries."""
  cpu = cpu_info()
  return {"cpu": cpu.model, "cpu_family_model": cpu.family_model, "cpu_cores": cpu.cores,
          **cpu.features(), "machine": platform.machine()}
