"""Evaluation reports: a rich table, JSON summary, per-image CSV, sample grid, HTML gallery.

Images of any channel count and dtype are shown as 8-bit RGB: scaled from their value range to
0..255, gray repeated, the first three bands of more (p2p.data.images.display).
"""

from __future__ import annotations

import csv
import html
import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from p2p.data.images import display, grid
from p2p.data.values import to_8bit

MODEL = "model"
GALLERY_METRIC = "seed/l1"  # worst first = highest seed L1
GRID_ROWS = 8
EIGHT_BIT = (0.0, 255.0)


def view(image: np.ndarray, value_range: tuple[float, float] = EIGHT_BIT) -> np.ndarray:
  """One native image as H x W x 3 uint8 to look at (8-bit RGB as it is)."""
  return display(to_8bit(image, value_range))


def _padded(rows: list[list[np.ndarray]]) -> list[list[np.ndarray]]:
  """The images padded with white to the largest height and width, for one grid."""
  height = max(im.shape[0] for row in rows for im in row)
  width = max(im.shape[1] for row in rows for im in row)
  return [[np.pad(im, ((0, height - im.shape[0]), (0, width - im.shape[1]), (0, 0)),
                  constant_values=255) for im in row] for row in rows]


def notes(meta: dict[str, Any]) -> list[str]:
  """What the report left out or scored differently, and why (from the meta)."""
  out = [f"FID/KID skipped: {meta['fid_skipped']}."] if meta.get("fid_skipped") else []
  out += [f"{meta['fid_images']}."] if meta.get("fid_images") else []
  out += [f"Baseline {kind} skipped: {why}."
          for kind, why in meta.get("baselines_skipped", {}).items()]
  return out


def summarize_results(results: dict[str, Any], meta: dict[str, Any]) -> dict[str, Any]:
  """The JSON-able summary: per protocol and source, each metric's mean/min/max/std/n."""
  protocols = {}
  for protocol, result in results.items():
    protocols[protocol] = {
        "n": len(result["examples"].names),
        "sources": {name: src["summary"] for name, src in result["sources"].items()}}
  return {"meta": meta, "protocols": protocols,
          "definitions": "see the module docstring of p2p/eval/metrics.py (seed/* = the seed "
                         "project's definitions; the others are standard 8-bit ones)"}


def write_json(path: Path, summary: dict[str, Any]) -> None:
  """Writes the summary atomically (inf/nan as strings, which JSON lacks)."""
  path.parent.mkdir(parents=True, exist_ok=True)
  tmp = path.with_suffix(".tmp")
  tmp.write_text(json.dumps(_finite(summary), indent=1))
  os.replace(tmp, path)


def _finite(value: Any) -> Any:
  if isinstance(value, dict):
    return {k: _finite(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [_finite(v) for v in value]
  if isinstance(value, (float, np.floating)) and not math.isfinite(value):
    return str(float(value))
  if isinstance(value, np.generic):
    return value.item()
  return value


def write_csv(path: Path, results: dict[str, Any]) -> None:
  """One row per (protocol, source, example) with every per-image metric."""
  rows, fields = [], ["protocol", "source", "example"]
  for protocol, result in results.items():
    for name, src in result["sources"].items():
      keys = sorted(src["per_image"])
      fields += [k for k in keys if k not in fields]
      for i, example in enumerate(result["examples"].names):
        rows.append({"protocol": protocol, "source": name, "example": example,
                     **{k: float(src["per_image"][k][i]) for k in keys}})
  with path.open("w", newline="") as f:
    writer = csv.DictWriter(f, fieldnames=fields)
    writer.writeheader()
    writer.writerows(rows)


def write_grid(path: Path, result: dict[str, Any], rows: int = GRID_ROWS) -> None:
  """input | generated | target for the first `rows` examples, as one PNG."""
  ex, fake = result["examples"], result["sources"][MODEL]["images"]
  source, target = result["ranges"]
  cells = [[view(ex.inputs[i], source), view(fake[i], target), view(ex.targets[i], target)]
           for i in range(min(rows, len(ex.names)))]
  Image.fromarray(grid(_padded(cells))).save(path)


def write_gallery(out: Path, results: dict[str, Any], summary: dict[str, Any],
                  size: int) -> Path:
  """index.html: per protocol the summary table, then examples worst first, images beside it."""
  sections = []
  for protocol, result in results.items():
    ex, model = result["examples"], result["sources"][MODEL]
    source, target = result["ranges"]
    values = model["per_image"]
    order = np.argsort(-values[GALLERY_METRIC], kind="stable")[:size]
    folder = out / "images" / protocol
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for rank, i in enumerate(order):
      cells = []
      for role, image, value_range in (("input", ex.inputs[i], source),
                                       ("generated", model["images"][i], target),
                                       ("target", ex.targets[i], target)):
        name = f"{i:05d}_{role}.jpg"
        Image.fromarray(view(image, value_range)).save(folder / name, quality=90)
        cells.append(f'<td><img src="images/{protocol}/{name}" alt="{role}"></td>')
      metrics = "<br>".join(f"{html.escape(k)}: {_fmt(values[k][i])}" for k in sorted(values))
      rows.append(f"<tr><td>{rank + 1}. {html.escape(ex.names[i])}<br><small>{metrics}</small>"
                  f"</td>{''.join(cells)}</tr>")
    sections.append(
        f"<h2>{html.escape(protocol)} ({len(ex.names)} examples; {len(order)} shown, worst "
        f"{html.escape(GALLERY_METRIC)} first)</h2>{_summary_html(summary['protocols'][protocol])}"
        f"<table class=g><tr><th>example</th><th>input</th><th>generated</th><th>target</th>"
        f"</tr>{''.join(rows)}</table>")
  meta = html.escape(json.dumps(_finite(summary["meta"])))
  remarks = "".join(f"<p><b>{html.escape(note)}</b></p>" for note in notes(summary["meta"]))
  page = (f"<!doctype html><meta charset=utf-8><title>p2p evaluation</title><style>"
          f"body{{font-family:sans-serif}} img{{width:256px}} td{{vertical-align:top;"
          f"padding:4px}} table.s td,table.s th{{border:1px solid #ccc;padding:2px 6px}}"
          f"</style><h1>p2p evaluation</h1><p><code>{meta}</code></p>{remarks}{''.join(sections)}")
  path = out / "index.html"
  path.write_text(page)
  return path


def _fmt(value: float, digits: int | None = None) -> str:
  if not math.isfinite(value):
    return str(value)
  return f"{value:.{digits}f}" if digits is not None else f"{value:.4g}"


def _summary_html(protocol: dict[str, Any]) -> str:
  metrics = _metric_names(protocol)
  head = "".join(f"<th>{html.escape(m)}</th>" for m in metrics)
  rows = "".join(f"<tr><td>{html.escape(name)}</td>"
                 + "".join(f"<td>{_cell(src, m)}</td>" for m in metrics) + "</tr>"
                 for name, src in protocol["sources"].items())
  return f"<table class=s><tr><th>source</th>{head}</tr>{rows}</table>"


def _metric_names(protocol: dict[str, Any]) -> list[str]:
  first = next(iter(protocol["sources"].values()))
  return [k for k in first if k not in ("fid", "kid")] + [k for k in ("fid", "kid")
                                                           if k in first]


def _cell(src: dict[str, Any], metric: str, with_std: bool = True) -> str:
  """One summary value as text: FID alone, else the mean (± std)."""
  value = src.get(metric)
  if value is None:
    return ""
  if metric == "fid":
    return f"{value:.1f}"
  digits = 2 if metric in ("seed/psnr", "psnr_8bit", "l1_8bit", "hp_l1") else 4
  text = _fmt(value["mean"], digits)
  return f"{text} ± {_fmt(value['std'], digits)}" if with_std else text


SHORT_NAMES = {"seed/l1": "L1", "seed/psnr": "PSNR", "seed/ssim": "SSIM", "seed/hp_l1": "HP-L1",
               "l1_8bit": "L1 8b", "psnr_8bit": "PSNR 8b", "ssim": "SSIM 0-1", "hp_l1": "HP 8b",
               "fid": "FID", "kid": "KID"}


def print_tables(summary: dict[str, Any]) -> None:
  """One rich table per protocol: sources as rows, metric means as columns (std in the JSON)."""
  from rich.console import Console
  from rich.table import Table
  console = Console()
  console.width = max(console.width, 116)  # 11 numeric columns; rich assumes 80 off a terminal
  for protocol, result in summary["protocols"].items():
    table = Table(title=f"{protocol}: {result['n']} examples, means (seed definitions, then "
                        f"8-bit ones; see metrics.json for min/max/std)")
    table.add_column("source")
    metrics = _metric_names(result)
    for metric in metrics:
      table.add_column(SHORT_NAMES.get(metric, metric), justify="right")
    for name, src in result["sources"].items():
      table.add_row(name, *(_cell(src, m, with_std=False) for m in metrics))
    console.print(table)
  for note in notes(summary["meta"]):
    console.print(f"Note: {note}", markup=False, highlight=False, soft_wrap=True)


def write_all(out: Path, results: dict[str, Any], meta: dict[str, Any], *,
              gallery_size: int = 100) -> dict[str, Any]:
  """Writes metrics.json, per_image.csv, samples_<protocol>.png and index.html into `out`."""
  out.mkdir(parents=True, exist_ok=True)
  summary = summarize_results(results, meta)
  write_json(out / "metrics.json", summary)
  write_csv(out / "per_image.csv", results)
  for protocol, result in results.items():
    write_grid(out / f"samples_{protocol}.png", result)
  write_gallery(out, results, summary, gallery_size)
  return summary
