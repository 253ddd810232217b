"""The demo's info panel: what the run is, how well it scored, and where it runs (markdown)."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from p2p import compat
from p2p.config import TrainConfig, train_config
from p2p.hardware import cpu_model
from p2p.ops.autotune import recorded_choice
from p2p.infer import Generator

SCORES = (("L1", "seed/l1", 4), ("PSNR", "seed/psnr", 2), ("SSIM", "seed/ssim", 3),
          ("FID", "fid", 1), ("KID", "kid", 4))


def run_config(workdir: str | os.PathLike, step: int) -> TrainConfig:
  """The config the checkpoint of `step` was written with."""
  from p2p.train.checkpoint import Checkpointer
  ckpt = Checkpointer(workdir)
  try:
    return train_config(compat.upgrade(ckpt.read_config(step), where=str(workdir)))
  finally:
    ckpt.close()


def trained_dtype(workdir: str | os.PathLike, config: TrainConfig) -> str:
  """The compute dtype the run trained in: recorded by auto's choice, else the config's."""
  chosen = recorded_choice(workdir)
  if config.compute_dtype == "auto" and chosen:
    return f"{chosen.get('dtype', '?')} (compute_dtype=auto)"
  return config.compute_dtype


def latest_val_l1(workdir: str | os.PathLike) -> tuple[int, float] | None:
  """(step, val_l1) of the last validation line in metrics.jsonl, if any."""
  path = Path(workdir) / "metrics.jsonl"
  found = None
  if path.is_file():
    for line in path.read_text().splitlines():
      try:
        row = json.loads(line)
      except json.JSONDecodeError:
        continue  # a line cut by a crash
      if "val_l1" in row:
        found = (int(row["step"]), float(row["val_l1"]))
  return found


def latest_eval(workdir: str | os.PathLike) -> tuple[Path, dict[str, Any]] | None:
  """The newest p2p-evaluate summary in the run (eval*/metrics.json), if any."""
  found = sorted(Path(workdir).glob("eval*/metrics.json"), key=lambda p: p.stat().st_mtime)
  for path in reversed(found):
    try:
      return path, json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
      continue
  return None


def device_line() -> str:
  """The device JAX runs on, and the CPU model for CPU runs."""
  import jax
  device = jax.devices()[0]
  text = f"{device.platform.upper()}: {device.device_kind} x {jax.device_count()}"
  if device.platform == "cpu":
    text = f"CPU: {cpu_model()}, {os.cpu_count()} cores"
  return f"{text} (JAX {jax.__version__})"


def _number(value: Any, digits: int) -> str:
  if isinstance(value, str):  # inf/nan are written as strings
    return value
  return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else \
      f"{value:.{digits}f}"


def eval_table(summary: dict[str, Any]) -> list[str]:
  """Markdown rows: one per (protocol, source) with L1, PSNR, SSIM and FID/KID when present."""
  rows = []
  for protocol, result in summary.get("protocols", {}).items():
    for source, scores in result.get("sources", {}).items():
      values = [scores.get(key) for _, key, _ in SCORES]
      rows.append((protocol, source, [v.get("mean") if isinstance(v, dict) else v
                                      for v in values]))
  shown = [i for i in range(len(SCORES)) if any(r[2][i] is not None for r in rows)]
  if not rows:
    return []
  head = "| protocol | source | " + " | ".join(SCORES[i][0] for i in shown) + " |"
  return [head, "|" + " --- |" * (2 + len(shown)),
          *(f"| {p} | {s} | " + " | ".join(_number(v[i], SCORES[i][2]) for i in shown) + " |"
            for p, s, v in rows)]


def describe(workdir: str | os.PathLike, gen: Generator, config: TrainConfig | None,
             limits: str) -> str:
  """The info panel's markdown."""
  from p2p.train.state import count_params
  data = gen.data
  (cin, cout), (din, dout) = gen.channels, gen.dtypes
  lines = [f"**Run** `{workdir}`: checkpoint step **{gen.step}**"
           + (" (EMA weights)" if gen.ema else "")]
  params = count_params(gen.variables["params"]) / 1e6
  if config is not None:
    m = config.model
    downs = m.num_downs or int(math.log2(data.image_size))
    lines.append(f"**Model** U-Net generator ({downs} downs, ngf {m.ngf}, {params:.2f} M "
                 f"parameters, {m.upsample} up-convs, norm {m.g_norm or m.norm}); "
                 f"{m.receptive_field}x{m.receptive_field} PatchGAN (ndf {m.ndf}) in training. "
                 f"Trained {config.num_epochs} epochs"
                 + (f" / {config.max_steps} steps" if config.max_steps else "")
                 + f" at batch {config.batch_size}, {trained_dtype(workdir, config)}.")
  else:
    lines.append(f"**Model** U-Net generator, {params:.2f} M parameters.")
  lines.append(f"**Data** `{data.data_dir}`, direction {data.direction}, {data.preprocess} to "
               f"{data.image_size} px; input {cin} x {din or 'uint8'}, output {cout} x "
               f"{dout or 'uint8'}.")
  val = latest_val_l1(workdir)
  if val:
    lines.append(f"**Validation L1** during training: {val[1]:.4f} at step {val[0]}.")
  found = latest_eval(workdir)
  if found:
    path, summary = found
    meta = summary.get("meta", {})
    lines.append(f"**Evaluation** (`{path.relative_to(workdir)}`: step {meta.get('step', '?')}, "
                 f"{meta.get('n_pairs', '?')} {meta.get('split', '')} pairs):")
    lines.append("\n".join(eval_table(summary)))
  else:
    lines.append("**Evaluation**: none yet (`p2p-evaluate --workdir=RUN` writes one).")
  lines.append(f"**Device** {device_line()}.")
  lines.append(f"**Serving** {limits}")
  return "\n\n".join(lines)
