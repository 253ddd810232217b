"""p2p-evaluate: score a run and the no-learning baselines; write RUN/eval/ (python -m p2p.evaluate).

    p2p-evaluate --workdir=RUN [--data_dir=DIR] [--split=val] [--json=OUT] [--limit=N]
        [--protocol=patches,resize,full] [--baseline=mean_color,mean_photo,input]

Protocol and image size default to how the run was trained; the dataset is read as the run
read it (layout, hold-out val, channels, dtypes, value ranges). Writes metrics.json,
per_image.csv, samples_<protocol>.png and index.html (p2p/eval/protocols.py has the protocols
and baselines, p2p/eval/metrics.py the metrics; docs/evaluation.md explains both). FID/KID and
the input baseline are skipped, with the reason in the report, where the data does not allow
them.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from absl import flags

from p2p import cli
from p2p.errors import UserError
from p2p.eval.protocols import (BASELINES, PROTOCOLS, check_fits, common_shape, evaluate,
                                fid_note, load_fid, load_pairs, skip_reasons, training_means)

_WORKDIR = flags.DEFINE_string("workdir", None, "Run folder with checkpoints (p2p.main's).")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "Dataset folder; default: the run's data_dir "
                                "(another folder: its layout and val split found anew).")
_SPLIT = flags.DEFINE_string("split", "val", "Split to score.")
_JSON = flags.DEFINE_string("json", None, "Also write the summary JSON here.")
_OUT = flags.DEFINE_string("out", None, "Report folder; default: WORKDIR/eval, or "
                           "WORKDIR/eval_step_N with --step=N (the newest's report stays).")
_LIMIT = flags.DEFINE_integer("limit", 0, "Score only the first N pairs (0 = all).")
_PROTOCOL = flags.DEFINE_list("protocol", [], f"Comma list of {PROTOCOLS}; default: the run's "
                              "data.preprocess (patches or resize).")
_BASELINE = flags.DEFINE_list("baseline", list(BASELINES),
                              f"Comma list of {BASELINES}, or 'none'.")
_STEP = flags.DEFINE_integer("step", None, "Checkpoint step; default: the newest.")
_NORM = flags.DEFINE_enum("norm", "batch", ["batch", "nodropout", "running"],
                          "batch: per-image statistics + dropout (paper); nodropout: the same "
                          "without dropout; running: eval mode.")
_EMA = flags.DEFINE_bool("ema", True, "Score the averaged generator weights of a run trained "
                         "with optim.ema_decay > 0 (--noema: the raw weights).")
_SEED = flags.DEFINE_integer("seed", 0, "PRNG seed for dropout.")
_IMAGE_SIZE = flags.DEFINE_integer("image_size", 0, "Side of the scored tiles/resized images, "
                                   "px; 0 = the run's data.image_size. The seed protocols use "
                                   "256; a run trained on smaller crops is scored at 256 with it.")
_FID = flags.DEFINE_bool("fid", True, "Compute FID and KID (needs the FID network weights).")
_FID_WEIGHTS = flags.DEFINE_string("fid_weights", "", "FID weights file (default_1.pt); default: "
                                   "search (`p2p-fid fetch` installs them); "
                                   "'random:SEED' only tests the plumbing.")
_TRAIN_LIMIT = flags.DEFINE_integer("train_limit", 0, "Training pairs averaged for the mean "
                                    "baselines (0 = all).")
_MAX_PIXELS = flags.DEFINE_integer("max_pixels", cli.DEFAULT_MAX_PIXELS, "Refuse images with "
                                   "more pixels than this per side (from the headers); 0 = none.")
_GALLERY = flags.DEFINE_integer("gallery_size", 100, "Examples per protocol in index.html "
                                "(worst first).")


def _checked_size(size: int, gen) -> int:
  """--image_size, if the generator (its U-Net depth fixed by training) can take it."""
  step = 2 ** gen.module.num_downs
  if size < step or size % step:
    raise UserError(f"--image_size={size} does not fit this generator: its U-Net has "
                     f"{gen.module.num_downs} levels, so use a multiple of {step} px.")
  return size


def _other_folder(data: Any, data_dir: str) -> Any:
  """The run's data section for another folder: its layout and val split found anew."""
  layout = data.layout if data.layout == "explicit" else "auto"
  return dataclasses.replace(data, data_dir=data_dir, layout=layout, val_source="auto")


def _data_meta(gen: Any, pairs: Any, skipped: dict[str, str], fid: bool) -> dict[str, Any]:
  """The report's record of the data (layout, hold-out, both sides) and of what was skipped."""
  meta = {"layout": pairs.layout, "val_source": pairs.val_source}
  for role, images, value_range in (("input", pairs.inputs, gen.ranges[0]),
                                    ("target", pairs.targets, gen.ranges[1])):
    meta[role] = {"channels": images[0].shape[-1], "dtype": images[0].dtype.name,
                  "range": [float(v) for v in value_range]}
  note = fid_note(pairs, gen.ranges[1]) if fid else None
  baselines = {k: v for k, v in skipped.items() if k != "fid"}
  for key, value in (("fid_skipped", skipped.get("fid")), ("fid_images", note),
                     ("baselines_skipped", baselines)):
    if value:
      meta[key] = value
  return meta


def main(argv: list[str]) -> None:
  """Loads the run, scores every protocol, writes the report and prints the table."""
  cli.check_args(argv)
  cli.quiet_library_logs()
  import p2p
  from p2p.eval import report
  bad = [p for p in _PROTOCOL.value if p not in PROTOCOLS]
  baselines = [] if _BASELINE.value == ["none"] else _BASELINE.value
  bad += [b for b in baselines if b not in BASELINES]
  if bad:
    cli.fail(f"unknown protocol/baseline {bad}; protocols: {PROTOCOLS}, baselines: "
             f"{BASELINES} or none.")
  from p2p.eval.fid import FidWeightsMissing
  gen = p2p.load(_WORKDIR.value, _STEP.value, ema=_EMA.value)
  out = cli.check_writable(_OUT.value or Path(_WORKDIR.value) / (
      "eval" if _STEP.value is None else f"eval_step_{_STEP.value}"), "--out", folder=True)
  if _JSON.value:
    cli.check_writable(_JSON.value, "--json")
  protocols = _PROTOCOL.value or [gen.data.preprocess]
  if _IMAGE_SIZE.value:
    gen = dataclasses.replace(gen, image_size=_checked_size(_IMAGE_SIZE.value, gen))
  data = gen.data if not _DATA_DIR.value else _other_folder(gen.data, _DATA_DIR.value)
  pairs = load_pairs(data, _SPLIT.value, _LIMIT.value, _MAX_PIXELS.value)
  check_fits(gen, pairs)
  skipped = skip_reasons(pairs, baselines, _FID.value)
  baselines = [b for b in baselines if b not in skipped]
  means = (training_means(data, common_shape(pairs.targets), _TRAIN_LIMIT.value)
           if {"mean_color", "mean_photo"} & set(baselines) else None)
  try:
    fid_params = load_fid(_FID_WEIGHTS.value) if _FID.value and "fid" not in skipped else None
  except FidWeightsMissing as e:
    cli.fail(f"{e} Or pass --nofid to skip FID and KID.")
  results = evaluate(gen, pairs, protocols=protocols, baselines=baselines, means=means,
                     fid_params=fid_params, norm=_NORM.value, seed=_SEED.value)
  meta = {"workdir": str(Path(_WORKDIR.value).resolve()), "step": gen.step,
          "data_dir": str(Path(data.data_dir).resolve()), "split": _SPLIT.value,
          "n_pairs": len(pairs.names), "image_size": gen.image_size, "protocols": protocols,
          "norm": _NORM.value, "ema": gen.ema, "seed": _SEED.value,
          "fid_weights": ("skipped" if "fid" in skipped else _FID_WEIGHTS.value
                          or ("found" if fid_params is not None else "off")),
          **_data_meta(gen, pairs, skipped, fid_params is not None)}
  summary = report.write_all(out, results, meta, gallery_size=_GALLERY.value)
  if _JSON.value:
    report.write_json(Path(_JSON.value), summary)
  report.print_tables(summary)
  print(f"Report: {out / 'index.html'}  JSON: {out / 'metrics.json'}  CSV: "
        f"{out / 'per_image.csv'}")


def run() -> None:
  """The p2p-evaluate console script."""
  cli.run(main)


if __name__ == "__main__":
  run()
