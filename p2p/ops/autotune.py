"""compute_dtype=auto: bf16 only where this machine runs it faster, else float32.

The choice follows the CPU's features (p2p.hardware): without bf16 dot instructions (AVX512-BF16
or AMX-BF16) bf16 is emulated and only slower, so float32 without timing anything; with them, a
short autotune times the U-Net's two typical convs (forward and backward, at 256 px) in both
dtypes and picks bf16 when it is clearly faster. The timings are cached per CPU model in the run
folder (autotune.json), so a resumed run on the same CPU makes the same choice without timing.
On a GPU, auto keeps float32 (the published setup; bf16 there is an explicit choice).
P2P_AUTO_DTYPE=float32|bfloat16 pins what auto picks (reproducibility across machines; tests).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import statistics
import time
from pathlib import Path

import jax
import jax.numpy as jnp

from p2p.hardware import CpuInfo, cpu_info
from p2p.ops import conv2d, conv_transpose2d

CACHE_FILE = "autotune.json"
PIN_ENV = "P2P_AUTO_DTYPE"
DTYPES = ("float32", "bfloat16")
# bf16 must beat float32 by this factor: it also costs precision, and timings drift ~5-10%.
MARGIN = 1.1
# The U-Net's second down conv (64 -> 128 features, 128 -> 64 px) and the up conv that mirrors
# it (256 -> 64, 64 -> 128 px) at 256 px, batch 1: (kind, input shape, kernel shape).
WORKLOAD = (("down", (1, 128, 128, 64), (4, 4, 64, 128)),
            ("up", (1, 64, 64, 256), (4, 4, 256, 64)))


@dataclasses.dataclass(frozen=True)
class Choice:
  """The compute dtype a run uses, and why."""

  dtype: str
  path: str  # "explicit" | "pinned" | "gpu" | "float32 (no bf16 dot)" | "amx_bf16" | "avx512_bf16"
  reason: str
  timings: dict[str, float] = dataclasses.field(default_factory=dict)  # dtype -> seconds

  def line(self) -> str:
    """The one log line that names the choice."""
    return f"compute_dtype: {self.dtype} ({self.reason})"


def needs_timing(backend: str, cpu: CpuInfo) -> bool:
  """Whether auto must time both dtypes here: a CPU with bf16 dot instructions."""
  return backend == "cpu" and (cpu.has("amx_bf16") or cpu.has("avx512_bf16"))


def select(backend: str, cpu: CpuInfo, timings: dict[str, float] | None = None) -> Choice:
  """auto's choice for a backend and CPU, given the autotune's seconds per dtype where needed."""
  if backend != "cpu":
    return Choice("float32", "gpu" if backend in ("gpu", "cuda", "rocm") else backend,
                  f"auto on {backend} keeps float32; compute_dtype=bfloat16 is an explicit choice")
  if not needs_timing(backend, cpu):
    return Choice("float32", "float32 (no bf16 dot)",
                  f"auto: {cpu.model} has neither AMX-BF16 nor AVX512-BF16, so bf16 is emulated")
  if not timings or any(d not in timings for d in DTYPES):
    raise ValueError(f"{cpu.model} has bf16 dot instructions: select() needs the autotune's "
                     f"timings of {DTYPES}.")
  unit = "amx_bf16" if cpu.has("amx_bf16") else "avx512_bf16"
  speedup = timings["float32"] / timings["bfloat16"]
  dtype = "bfloat16" if speedup >= MARGIN else "float32"
  verdict = "faster" if dtype == "bfloat16" else f"not >= {MARGIN}x faster"
  return Choice(dtype, unit, f"auto: {cpu.model} has {unit.upper().replace('_', '-')}; bf16 convs "
                f"{speedup:.2f}x float32's speed in the autotune, {verdict}", dict(timings))


def time_convs(repeats: int = 5) -> dict[str, float]:
  """Seconds of WORKLOAD (forward + backward, median of interleaved repeats) per dtype."""
  def layer(kind, x, kernel):
    return conv2d(x, kernel, 2) if kind == "down" else conv_transpose2d(x, kernel)

  def loss(xs, kernels, dtype):
    return sum(jnp.sum(layer(kind, x.astype(dtype), k).astype(jnp.float32))
               for (kind, _, _), x, k in zip(WORKLOAD, xs, kernels))

  keys = iter(jax.random.split(jax.random.key(0), 2 * len(WORKLOAD)))
  xs = [jax.random.normal(next(keys), shape) for _, shape, _ in WORKLOAD]
  kernels = [0.02 * jax.random.normal(next(keys), shape) for _, _, shape in WORKLOAD]
  fns = {d: jax.jit(jax.grad(lambda xs, ks, d=d: loss(xs, ks, jnp.dtype(d)), argnums=(0, 1)))
         for d in DTYPES}
  times: dict[str, list[float]] = {d: [] for d in DTYPES}
  for d in DTYPES:
    jax.block_until_ready(fns[d](xs, kernels))  # compile and warm up
  for _ in range(repeats):
    for d in DTYPES:
      start = time.perf_counter()
      jax.block_until_ready(fns[d](xs, kernels))
      times[d].append(time.perf_counter() - start)
  return {d: round(statistics.median(t), 6) for d, t in times.items()}


def _read(workdir: Path | None) -> dict:
  path = workdir / CACHE_FILE if workdir is not None else None
  try:
    data = json.loads(path.read_text()) if path is not None and path.is_file() else {}
    return data if isinstance(data, dict) else {}
  except (OSError, ValueError):
    return {}  # unreadable: time again, rewrite it


def cached_timings(workdir: Path | None, key: str) -> dict[str, float] | None:
  """The autotune's timings for this CPU key from workdir/autotune.json, if there."""
  try:
    timings = _read(workdir)["cpus"][key]["timings"]
    return {d: float(timings[d]) for d in DTYPES}
  except (KeyError, TypeError, ValueError):
    return None


def recorded_choice(workdir: str | os.PathLike) -> dict | None:
  """The choice a run recorded in workdir/autotune.json (dtype, path, reason, cpu), if any."""
  chosen = _read(Path(workdir)).get("chosen")
  return chosen if isinstance(chosen, dict) else None


def record(workdir: str | os.PathLike, choice: Choice, cpu: CpuInfo | None = None) -> None:
  """Writes the run's choice (and this CPU's timings, when timed) to workdir/autotune.json."""
  directory, cpu = Path(workdir), cpu or cpu_info()
  data = _read(directory)
  data["chosen"] = {"dtype": choice.dtype, "path": choice.path, "reason": choice.reason,
                    "cpu": cpu.key, "jax": jax.__version__}
  if choice.timings:
    data.setdefault("cpus", {})[cpu.key] = {"timings": choice.timings, "dtype": choice.dtype,
                                            "jax": jax.__version__}
  tmp = directory / (CACHE_FILE + ".tmp")
  tmp.write_text(json.dumps(data, indent=1) + "\n")
  tmp.replace(directory / CACHE_FILE)


_chosen: dict[str, Choice] = {}  # per process: "backend: CPU key" -> auto's choice


def _key(backend: str, cpu: CpuInfo) -> str:
  return f"{backend}: {cpu.key}"


def resolve(compute_dtype: str, workdir: str | os.PathLike | None = None, *,
            backend: str | None = None, cpu: CpuInfo | None = None) -> Choice:
  """The dtype a config's compute_dtype means here: itself, or auto's choice (timed once per
  process and CPU unless workdir/autotune.json holds this CPU's timings; `record` writes it)."""
  if compute_dtype != "auto":
    return Choice(compute_dtype, "explicit", "set in the config")
  pinned = os.environ.get(PIN_ENV, "")
  if pinned:
    if pinned not in DTYPES:
      raise ValueError(f"{PIN_ENV}={pinned!r} is not one of {DTYPES}.")
    return Choice(pinned, "pinned", f"auto pinned by {PIN_ENV}")
  backend, cpu = backend or jax.default_backend(), cpu or cpu_info()
  key = _key(backend, cpu)
  if key in _chosen:
    choice = _chosen[key]
  elif not needs_timing(backend, cpu):
    choice = select(backend, cpu)
  else:
    directory = Path(workdir) if workdir is not None else None
    cached = cached_timings(directory, cpu.key)
    choice = select(backend, cpu, cached or time_convs())
    if cached:
      choice = dataclasses.replace(choice, reason=f"{choice.reason} (timings cached in "
                                   f"{directory / CACHE_FILE})")
  _chosen[key] = choice
  return choice


def agree(choice: Choice) -> Choice:
  """Process 0's choice on every process (each timed its own), pinned for resolve('auto')."""
  if jax.process_count() == 1:
    return choice
  import numpy as np
  from jax.experimental import multihost_utils
  index = int(multihost_utils.broadcast_one_to_all(np.int32(DTYPES.index(choice.dtype))))
  if DTYPES[index] != choice.dtype:  # only auto's timed choice can differ between processes
    choice = Choice(DTYPES[index], choice.path, f"{choice.reason}; process 0 chose "
                    f"{DTYPES[index]}, which every process uses", choice.timings)
    _chosen[_key(jax.default_backend(), cpu_info())] = choice
  return choice


def log(choice: Choice) -> None:
  """The one line that names the choice."""
  logging.info("%s", choice.line())
