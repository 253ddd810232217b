"""Where metrics and images go: local files in the workdir (always) and W&B (when asked)."""

from __future__ import annotations

import concurrent.futures
import json
import logging
import math
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from PIL import Image

from p2p.config import WandbConfig


class Writer(Protocol):
  """The small interface the training loop writes through."""

  def write_scalars(self, step: int, scalars: Mapping[str, float]) -> None: ...
  def write_image(self, step: int, name: str, image: np.ndarray) -> None: ...
  def flush(self) -> None: ...
  def close(self) -> None: ...


class LocalWriter:
  """metrics.jsonl, loss_curve.png and samples/<name>_<step>.png in the workdir.

  The loss curve is drawn on a background thread (about half a second of CPU per plot), at most
  once per PLOT_INTERVAL_S, so the training loop never waits for it and shares little CPU with
  it; close() draws the final one and waits.
  """

  PLOT_INTERVAL_S = 60.0

  def __init__(self, workdir: str | os.PathLike, resume_step: int = 0):
    self.workdir = Path(workdir)
    self.metrics_path = self.workdir / "metrics.jsonl"
    self.curve_path = self.workdir / "loss_curve.png"
    self.samples_dir = self.workdir / "samples"
    self.samples_dir.mkdir(parents=True, exist_ok=True)
    self._rows = _truncate_after(self.metrics_path, resume_step)
    self._file = self.metrics_path.open("a")
    self._plotter = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="loss-curve")
    self._plot: concurrent.futures.Future | None = None
    self._plotted_at = time.monotonic()

  def write_scalars(self, step: int, scalars: Mapping[str, float]) -> None:
    row = {"step": int(step), **{k: float(v) for k, v in scalars.items()}}
    self._rows.append(row)
    self._file.write(json.dumps(row) + "\n")

  def write_image(self, step: int, name: str, image: np.ndarray) -> Path:
    path = self.samples_dir / f"{name}_{int(step):08d}.png"
    Image.fromarray(np.asarray(image)).save(path)
    return path

  def flush(self) -> None:
    self._file.flush()
    now = time.monotonic()
    if (self._rows and (self._plot is None or self._plot.done())
        and now - self._plotted_at >= self.PLOT_INTERVAL_S):
      self._plotted_at = now
      self._plot = self._plotter.submit(plot_losses, list(self._rows), self.curve_path)

  def close(self) -> None:
    self._file.close()
    if self._plot is not None:
      self._plot.result()
    self._plotter.shutdown()
    if self._rows:
      plot_losses(self._rows, self.curve_path)


def _truncate_after(path: Path, step: int) -> list[dict]:
  """Keeps the rows up to `step` (a resumed run rewrites what came after its checkpoint)."""
  if not path.exists():
    return []
  rows = []
  for line in path.read_text().splitlines():
    try:
      row = json.loads(line)
    except json.JSONDecodeError:  # A line cut short by a crash.
      continue
    if row.get("step", 0) <= step:
      rows.append(row)
  path.write_text("".join(json.dumps(r) + "\n" for r in rows))
  return rows


def plot_losses(rows: Sequence[Mapping[str, Any]], path: Path) -> None:
  """One panel per loss against the step, written atomically as a PNG (thread-safe)."""
  from matplotlib.backends.backend_agg import FigureCanvasAgg
  from matplotlib.figure import Figure
  keys = sorted({k for r in rows for k in r if k != "step" and not k.startswith("perf/")})
  if not keys:
    return
  cols = min(len(keys), 3)
  nrows = math.ceil(len(keys) / cols)
  fig = Figure(figsize=(4 * cols, 2.6 * nrows))
  FigureCanvasAgg(fig)
  axes = fig.subplots(nrows, cols, squeeze=False)
  for ax, key in zip(axes.flat, keys):
    points = [(r["step"], r[key]) for r in rows if key in r]
    ax.plot(*zip(*points), lw=1, marker="." if len(points) < 30 else None)
    ax.set_title(key, fontsize=9)
    ax.set_xlabel("step", fontsize=8)
    ax.tick_params(labelsize=7)
  for ax in list(axes.flat)[len(keys):]:
    ax.axis("off")
  fig.tight_layout()
  tmp = path.with_suffix(".tmp.png")
  fig.savefig(tmp, dpi=80)
  os.replace(tmp, path)


class WandbWriter:
  """Weights & Biases run (offline or online); created only when mode is not disabled."""

  def __init__(self, cfg: WandbConfig, workdir: str | os.PathLike, config: dict):
    import wandb
    self._wandb = wandb
    self._run = wandb.init(mode=cfg.mode, project=cfg.project, entity=cfg.entity or None,
                           name=cfg.name or Path(workdir).resolve().name, dir=str(workdir),
                           config=config, id=_run_id(workdir), resume="allow")

  def write_scalars(self, step: int, scalars: Mapping[str, float]) -> None:
    self._run.log({k: float(v) for k, v in scalars.items()}, step=int(step))

  def write_image(self, step: int, name: str, image: np.ndarray) -> None:
    self._run.log({name: self._wandb.Image(np.asarray(image))}, step=int(step))

  def flush(self) -> None:
    pass

  def close(self) -> None:
    self._run.finish()


def _run_id(workdir: str | os.PathLike) -> str:
  """A W&B run id kept in the workdir, so a resumed run continues the same W&B run."""
  path = Path(workdir) / "wandb_run_id"
  if not path.exists():
    import secrets
    path.write_text(secrets.token_hex(4))
  return path.read_text().strip()


class MultiWriter:
  """Fans every call out to several writers."""

  def __init__(self, writers: Sequence[Any]):
    self.writers = list(writers)

  def write_scalars(self, step: int, scalars: Mapping[str, float]) -> None:
    for w in self.writers:
      w.write_scalars(step, scalars)

  def write_image(self, step: int, name: str, image: np.ndarray) -> None:
    for w in self.writers:
      w.write_image(step, name, image)

  def flush(self) -> None:
    for w in self.writers:
      w.flush()

  def close(self) -> None:
    for w in self.writers:
      w.close()


class NullWriter:
  """Writes nothing: processes other than 0 in a multi-host run."""

  def write_scalars(self, step: int, scalars: Mapping[str, float]) -> None:
    pass

  def write_image(self, step: int, name: str, image: np.ndarray) -> None:
    pass

  def flush(self) -> None:
    pass

  def close(self) -> None:
    pass


def create_writer(workdir: str | os.PathLike, cfg: WandbConfig, config: dict, *,
                  resume_step: int = 0, is_main_process: bool = True) -> Writer:
  """Local files always; W&B too unless its mode is disabled; nothing off process 0."""
  if not is_main_process:
    return NullWriter()
  writers: list[Any] = [LocalWriter(workdir, resume_step)]
  if cfg.mode != "disabled":
    writers.append(WandbWriter(cfg, workdir, config))
    logging.info("W&B logging in %s mode.", cfg.mode)
  return MultiWriter(writers)
