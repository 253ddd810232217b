"""Checks a dataset folder before training: layout, pairs, sizes, channels, values, bad files.

  python -m p2p.data.inspect DIR [--layout folders] [--direction AtoB] [--json findings.json]
  exit code 0: training would start on it; 1: it would stop with the error printed; 2: bad flags
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import dataclasses
import json
import logging
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from p2p.config import PREPROCESS, ConfigError, DataConfig
from p2p.data.errors import DataError
from p2p.data.folder import DIRECTIONS, check_pair, describe, load_pair, orient, scan_split
from p2p.data.layouts import (LAYOUTS, VAL_SOURCES, Layout, PairFiles, detect, list_files,
                              resolve_val_source, split_pairs)
from p2p.data.values import check_values, range_text, value_range

SHOW = 10  # unmatched names and bad pairs listed per split
PASSED = ("a_channels", "b_channels", "val_source", "val_fraction", "preprocess", "patch_size",
          "image_size", "load_size", "skip_bad_files")  # repeated in the train command if set
WHERE = {"side_by_side": "A = the left half, B = the right half of each image in {root}/<split>/",
         "folders": "A = {root}/<split>/A, B = {root}/<split>/B, paired by file stem",
         "explicit": "A = {root}/{a_dir}, B = {root}/{b_dir}, paired by file stem"}


def pair_facts(files: PairFiles, cfg: DataConfig, min_size: int, decode: bool) -> dict[str, Any]:
  """One pair's size and sides (headers), value ranges if decoded, and the error it causes."""
  result = check_pair(files, cfg, min_size, verify=False)
  if isinstance(result, DataError):
    return {"error": str(result)}
  facts: dict[str, Any] = {"size": result[0], "a": result[1], "b": result[2]}
  if not decode:
    return facts
  try:
    for side, image in zip("ab", load_pair(files, cfg.a_channels, cfg.b_channels)):
      facts[f"{side}_values"] = lo_hi = (float(np.min(image)), float(np.max(image)))
      check_values(np.array(lo_hi), value_range(image.dtype, getattr(cfg, f"{side}_range")),
                   files.b if side == "b" and files.b else files.a, f"data.{side}_range")
  except DataError as e:
    facts["error"] = str(e)
  return facts


def unmatched(root: Path, layout: Layout, split: str) -> dict[str, list[str]]:
  """A split's file names with no partner of the same stem on the other side."""
  if layout.kind == "side_by_side":
    return {"a": [], "b": []}
  a, b = ({p.stem: p.name for p in list_files(folder, side)}
          for folder, side in zip(layout.folders(root, split), "AB"))
  return {"a": [name for stem, name in a.items() if stem not in b],
          "b": [name for stem, name in b.items() if stem not in a]}


def _side(facts: list[dict], side: str) -> dict[str, Any]:
  """A side's commonest channels/dtype, every kind seen, and the observed value range."""
  kinds = collections.Counter(f"{r[side].channels} x {r[side].dtype}" for r in facts)
  common = collections.Counter(r[side] for r in facts).most_common(1)
  values = [r[f"{side}_values"] for r in facts if f"{side}_values" in r]
  return {"channels": common[0][0].channels if common else 0,
          "dtype": common[0][0].dtype if common else "", "kinds": dict(kinds),
          "decoded": len(values),
          "values": [min(v[0] for v in values), max(v[1] for v in values)] if values else None}


def split_facts(cfg: DataConfig, layout: Layout, val_source: str, split: str,
                max_files: int = 0) -> dict[str, Any]:
  """One split: pairs, sizes, sides, value ranges, unmatched files, bad pairs, or its error."""
  holdout = val_source == "holdout"
  facts = {"split": split, "holdout": holdout, "pairs": 0, "error": None,
           "unmatched": {"a": [], "b": []}, "bad": [], "size": None, "a": None, "b": None}
  try:
    pairs = split_pairs(cfg.data_dir, layout, split, val_source=val_source,
                        val_fraction=cfg.val_fraction, skip_unmatched=True)
    if not (holdout and split == "val"):  # a hold-out's unmatched files are train's
      facts["unmatched"] = unmatched(Path(cfg.data_dir).expanduser(), layout,
                                     "train" if holdout else split)
  except DataError as e:
    return {**facts, "error": str(e)}
  min_size = cfg.patch_size if cfg.preprocess == "patches" else cfg.image_size
  with concurrent.futures.ThreadPoolExecutor(max(cfg.num_threads, 4)) as pool:
    results = list(pool.map(
        lambda i: pair_facts(pairs[i], cfg, min_size, max_files <= 0 or i < max_files),
        range(len(pairs))))
  read = [r for r in results if "size" in r]
  sizes = np.sort(np.array([r["size"] for r in read]).reshape(-1, 2), 0)  # H and W sorted apart
  rows = {"min": 0, "median": (len(sizes) - 1) // 2, "max": -1}
  return {**facts, "pairs": len(pairs),
          "size": {k: sizes[i].tolist() for k, i in rows.items()} if read else None,
          "bad": [{"pair": p.name, "error": r["error"]} for p, r in zip(pairs, results)
                  if "error" in r],
          "a": _side(read, "a"), "b": _side(read, "b")}


def suggest_range(dtype: str, values: Sequence[float] | None) -> dict[str, Any] | None:
  """A data.x_range for values the dtype's default range fits badly; None where it fits."""
  if not dtype or values is None:
    return None
  lo, hi = values
  if np.issubdtype(np.dtype(dtype), np.floating):
    return None if 0 <= lo and hi <= 1 else {
        "range": [lo, hi], "required": True, "why": f"float values in [{lo:g}, {hi:g}] fall "
        f"outside the default [0, 1]; required: training stops without it"}
  info, bits = np.iinfo(dtype), int(hi).bit_length()
  if lo < 0 or hi <= 0 or bits >= info.bits:
    return None
  return {"range": [0.0, float(2 ** bits - 1)], "required": False, "why": f"values reach {hi:g} "
          f"({bits} of {dtype}'s {info.bits} bits); optional: it scales them to the full [-1, 1] "
          f"instead of [-1, {2 * (2 ** bits - 1) / info.max - 1:.3g}]"}


def train_command(cfg: DataConfig, layout: Layout, ranges: dict[str, Any]) -> str:
  """The p2p-train line for this dataset as inspected (flags given here, suggested ranges)."""
  flags = [f"--workdir=runs/{Path(cfg.data_dir).resolve().name or 'data'}",
           f"--config.data.data_dir={shlex.quote(cfg.data_dir)}",
           f"--config.data.layout={layout.kind}"]
  if layout.kind == "explicit":
    flags += [f"--config.data.{s}_dir={shlex.quote(getattr(layout, s + '_dir'))}" for s in "ab"]
  flags.append(f"--config.data.direction={cfg.direction}")
  flags += [f"--config.data.{name}={getattr(cfg, name)}" for name in PASSED
            if getattr(cfg, name) != getattr(DataConfig, name)]
  for side in "ab":
    lo_hi = getattr(cfg, f"{side}_range") or (ranges[side] or {}).get("range")
    if lo_hi:
      flags.append(f"--config.data.{side}_range={shlex.quote(range_text(lo_hi))}")
  return " ".join(["p2p-train --config=configs/rf70_patches.py", *flags])


def verdict(cfg: DataConfig) -> tuple[str | None, str | None]:
  """(the error training would stop with, the warning it would train on with): train must
  scan; a val split that does not makes training skip validation, with a warning."""
  try:
    scan = scan_split(cfg, "train")
  except (DataError, ConfigError) as e:
    return str(e), None
  try:
    scan_split(dataclasses.replace(cfg, **describe(cfg, scan)), "val")
  except (DataError, ConfigError) as e:
    return None, f"No validation examples ({e}); training would skip val_l1 and samples."
  return None, None


def gather(cfg: DataConfig, max_files: int = 0) -> dict[str, Any]:
  """The findings on a dataset, JSON-ready; 'error' is what stops training (None: it trains)."""
  logging.disable(logging.WARNING)  # the scan's warnings: the findings list what they say
  try:
    layout = detect(cfg.data_dir, cfg.layout, cfg.a_dir, cfg.b_dir)
    val_source = resolve_val_source(cfg.data_dir, layout, cfg.val_source)
    splits = {s: split_facts(cfg, layout, val_source, s, max_files) for s in ("train", "val")}
    error, warning = verdict(cfg)
  finally:
    logging.disable(logging.NOTSET)
  ranges = {}
  for s in "ab":
    seen = [f[s] for f in splits.values() if f[s] and f[s]["values"]]
    ranges[s] = None if getattr(cfg, f"{s}_range") or not seen else suggest_range(
        seen[0]["dtype"], [min(x["values"][0] for x in seen), max(x["values"][1] for x in seen)])
  channels = [(splits["train"][s] or {}).get("channels", 0) for s in "ab"]
  where = WHERE[layout.kind].format(root=cfg.data_dir, a_dir=layout.a_dir, b_dir=layout.b_dir)
  return {"root": cfg.data_dir, "layout": dataclasses.asdict(layout), "where": where,
          "val_source": val_source, "val_fraction": cfg.val_fraction, "direction": cfg.direction,
          "splits": splits, "ranges": ranges,
          "model": {d: dict(zip(("input", "output"), orient(*channels, d))) for d in
                    ("AtoB", "BtoA")},
          "command": train_command(cfg, layout, ranges), "ok": error is None, "error": error,
          "warning": warning}


def _column(split: dict[str, Any]) -> dict[str, str]:
  """One split's column of the summary table, by row name."""
  rows = {"pairs": f"{split['pairs']}" + (" (hold-out)" if split["holdout"] and
                                           split["split"] == "val" else ""),
          "size H x W: min / median / max": " / ".join(
              f"{h} x {w}" for h, w in split["size"].values()) if split["size"] else "-"}
  for s in "ab":
    side = split[s] or {"kinds": {}, "values": None}
    kinds, lo_hi = side["kinds"], side["values"]
    rows[f"{s.upper()} channels x dtype"] = (", ".join(f"{k} ({n})" for k, n in kinds.items())
                                             if len(kinds) > 1 else "".join(kinds) or "-")
    rows[f"{s.upper()} values min .. max"] = (
        f"{lo_hi[0]:g} .. {lo_hi[1]:g} ({side['decoded']} decoded)" if lo_hi else "-")
  rows["unmatched files A / B"] = " / ".join(str(len(v)) for v in split["unmatched"].values())
  rows["bad pairs"] = str(len(split["bad"]))
  return rows


def render(findings: dict[str, Any], console: Console) -> None:
  """Prints the findings: the splits table, problem lists, the model's channels, the command."""
  def line(text: str) -> None:
    console.print(text, soft_wrap=True, highlight=False, markup=False)
  val = ("its val/ split" if findings["val_source"] == "folder" else
         f"a hold-out of {findings['val_fraction']:.0%} of train (by file-stem hash)")
  line(f"Dataset {findings['root']}: layout {findings['layout']['kind']}; val = {val}.\n"
       f"{findings['where']}.")
  columns = {s: _column(f) for s, f in findings["splits"].items()}
  table = Table("", *columns, title="Splits")
  for row in columns["train"]:
    table.add_row(row, *(escape(c[row]) for c in columns.values()))
  found = any(f["pairs"] for f in findings["splits"].values())  # else tables of dashes
  if found:
    console.print(table)
  for split, facts in findings["splits"].items():
    for side, names in facts["unmatched"].items():
      if names:
        line(f"{split}: {len(names)} {side.upper()} file(s) without a partner"
             f"{f' (first {SHOW})' if len(names) > SHOW else ''}: {', '.join(names[:SHOW])}")
    for bad in facts["bad"][:SHOW]:
      line(f"{split}: bad pair {bad['pair']}: {bad['error']}")
    if len(facts["bad"]) > SHOW:
      line(f"{split}: ... and {len(facts['bad']) - SHOW} more bad pairs.")
    if facts["error"]:
      line(f"{split}: {facts['error']}")
  chosen = "AtoB" if orient("a", "b", findings["direction"])[0] == "a" else "BtoA"
  model = Table("direction", "input", "output", title="What the model sees (channels)")
  for d, io in findings["model"].items():
    model.add_row(d + (" (chosen)" if d == chosen else ""),
                  *(f"{s}: {io[k] or '?'}" for s, k in ((d[0], "input"), (d[-1], "output"))))
  if found:
    console.print(model)
  for side, hint in findings["ranges"].items():
    if hint:
      line(f"data.{side}_range={range_text(hint['range'])}: {hint['why']}.")
  line(f"Train with (--config.data.direction=AtoB translates A into B):\n  "
       f"{findings['command']}")


def _range(text: str) -> tuple[float, ...]:
  """'lo,hi' or '(lo, hi)' -> (lo, hi); '' -> ()."""
  parts = [p for p in text.strip("()[] ").split(",") if p.strip()]
  if len(parts) not in (0, 2):
    raise argparse.ArgumentTypeError(f"{text!r} is not 'lo,hi' (e.g. 0,4095)")
  return tuple(float(p) for p in parts)


def parser() -> argparse.ArgumentParser:
  """The command line; each option sets the data.* field of the same name."""
  p = argparse.ArgumentParser(prog="p2p-inspect", description=__doc__.splitlines()[0])
  p.add_argument("root", help="dataset folder (data.data_dir)")
  for name, kind, choices in (
      ("layout", str, LAYOUTS), ("a_dir", str, None), ("b_dir", str, None),
      ("direction", str, DIRECTIONS), ("a_channels", int, None), ("b_channels", int, None),
      ("a_range", _range, None), ("b_range", _range, None), ("val_source", str, VAL_SOURCES),
      ("val_fraction", float, None), ("preprocess", str, PREPROCESS), ("patch_size", int, None),
      ("image_size", int, None)):
    p.add_argument(f"--{name}", type=kind, choices=choices, help=f"data.{name}")
  p.add_argument("--skip_bad_files", action="store_true", help="data.skip_bad_files")
  p.add_argument("--max_files", type=int, default=0, help="decode at most N pairs per split "
                 "for the value ranges (0 = all; the train check still reads every file)")
  p.add_argument("--json", help="also write the findings to this JSON file")
  return p


def main(argv: Sequence[str] | None = None) -> int:
  """Inspects and prints; the exit code: 0 it trains, 2 it would not (or bad flags), as p2p's
  other commands exit on an expected failure."""
  try:
    args = parser().parse_args(argv)
  except SystemExit as e:  # argparse has printed the usage error (or --help)
    return int(e.code or 0)
  given = {k: v for k, v in vars(args).items() if v is not None and hasattr(DataConfig, k)}
  load_size = max(DataConfig.load_size, given.get("image_size", 0) * 286 // 256)  # jitter ratio
  try:
    cfg = DataConfig(data_dir=args.root, load_size=load_size, **given)
    findings = gather(cfg, args.max_files)
  except (ConfigError, DataError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  render(findings, Console())
  if args.json:
    Path(args.json).write_text(json.dumps(findings, indent=1))
  if findings["error"]:
    print(f"error: {findings['error']}", file=sys.stderr)
    return 2
  if findings["warning"]:
    print(f"warning: {findings['warning']}", file=sys.stderr)
  print("OK: training would start on this dataset.")
  return 0


def run() -> None:
  """Console-script entry point (p2p-inspect)."""
  sys.exit(main())


if __name__ == "__main__":
  run()
