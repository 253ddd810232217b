"""Where a dataset's pairs are: the layout (side by side, A/B folders, explicit folders), pairs
matched by file stem, and a hash hold-out for datasets without a val split."""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
from pathlib import Path

from p2p.data.errors import DataError
from p2p.data.io import SUFFIXES, is_image

LAYOUTS = ("auto", "side_by_side", "folders", "explicit")
VAL_SOURCES = ("auto", "folder", "holdout")
SHOW = 5  # unmatched names listed in an error


@dataclasses.dataclass(frozen=True)
class PairFiles:
  """One pair's files: A and B, or (b is None) one side-by-side image, A left and B right."""

  name: str
  a: str
  b: str | None = None


@dataclasses.dataclass(frozen=True)
class Layout:
  """A resolved layout; a_dir/b_dir are folders under the root with '{split}' filled in."""

  kind: str
  a_dir: str = ""
  b_dir: str = ""

  def folders(self, root: Path, split: str) -> tuple[Path, ...]:
    """The folder(s) holding a split's files."""
    if self.kind == "side_by_side":
      return (root / split,)
    if self.kind == "folders":
      return root / split / "A", root / split / "B"
    return tuple(root / d.format(split=split) for d in (self.a_dir, self.b_dir))

  @property
  def has_splits(self) -> bool:
    """Whether splits live in separate folders (explicit folders without '{split}' do not)."""
    return self.kind != "explicit" or "{split}" in self.a_dir + self.b_dir


def detect(root: str | os.PathLike, layout: str = "auto", a_dir: str = "",
           b_dir: str = "") -> Layout:
  """The layout of a dataset folder: as configured, or found from its folders."""
  root = Path(root).expanduser()
  if layout not in LAYOUTS:
    raise DataError(f"data.layout={layout!r} is not one of {LAYOUTS}.")
  if layout == "explicit" or (layout == "auto" and (a_dir or b_dir)):
    if not (a_dir and b_dir):
      raise DataError("The explicit layout needs both data.a_dir and data.b_dir (folders under "
                      "data.data_dir, '{split}' standing for train/val, e.g. 'sar/{split}').")
    return Layout("explicit", a_dir, b_dir)
  if layout != "auto":
    return Layout(layout)
  if (root / "train" / "A").is_dir() and (root / "train" / "B").is_dir():
    return Layout("folders")
  if (root / "A").is_dir() and (root / "B").is_dir():  # the PyTorch repo's A/train, B/train
    split = "/{split}" if (root / "A" / "train").is_dir() else ""
    return Layout("explicit", f"A{split}", f"B{split}")
  return Layout("side_by_side")


def natural_key(name: str) -> tuple:
  """Sort 2.jpg before 10.jpg, like the original file numbering."""
  stem = Path(name).stem
  return (0, int(stem), name) if stem.isdigit() else (1, 0, name)


def list_files(folder: Path, what: str) -> list[Path]:
  """The image files of one folder, naturally sorted; DataError if it is missing or empty."""
  if not folder.is_dir():
    parent = folder.parent
    found = sorted(p.name for p in parent.iterdir() if p.is_dir()) if parent.is_dir() else []
    raise DataError(f"{what} folder {folder} does not exist (beside it: {found or 'nothing'}). "
                    f"docs/data.md shows the layouts p2p reads.")
  files = sorted((p for p in folder.iterdir() if p.is_file() and is_image(p)),
                 key=lambda p: natural_key(p.name))
  if not files:
    raise DataError(f"{what} folder {folder} holds no images ({', '.join(SUFFIXES)}).")
  return files


def match(a_files: list[Path], b_files: list[Path], a_dir: Path, b_dir: Path,
          skip_unmatched: bool = False) -> list[PairFiles]:
  """Pairs A and B files by stem (extensions may differ); one error for any mismatch."""
  sides = []
  for files, folder in ((a_files, a_dir), (b_files, b_dir)):
    by_stem: dict[str, Path] = {}
    for path in files:
      if path.stem in by_stem:
        raise DataError(f"{folder} holds both {by_stem[path.stem].name} and {path.name}: two "
                        f"files with the stem {path.stem!r} cannot both pair up; remove one.")
      by_stem[path.stem] = path
    sides.append(by_stem)
  a, b = sides
  only_a = [a[s].name for s in a if s not in b]
  only_b = [b[s].name for s in b if s not in a]
  if (only_a or only_b) and not skip_unmatched:
    raise DataError(
        f"{a_dir} ({len(a)} files) and {b_dir} ({len(b)} files) do not pair up by file stem: "
        f"{len(a) - len(only_a)} matched, {len(only_a)} only in A (first {SHOW}: "
        f"{only_a[:SHOW]}), {len(only_b)} only in B (first {SHOW}: {only_b[:SHOW]}). Rename "
        f"them so that each A file has a B file of the same name (extensions may differ), "
        f"remove the extras, or set data.skip_bad_files=True to train on the matched pairs.")
  if only_a or only_b:
    logging.warning("Skipping %d unmatched A and %d unmatched B files (%s, %s).", len(only_a),
                    len(only_b), a_dir, b_dir)
  return [PairFiles(path.stem, str(path), str(b[path.stem])) for path in a_files
          if path.stem in b]


def stem_hash(name: str) -> float:
  """A file stem's place in [0, 1): stable across runs, machines and file formats."""
  return int.from_bytes(hashlib.sha256(Path(name).stem.encode()).digest()[:8], "big") / 2 ** 64


def in_holdout(name: str, fraction: float) -> bool:
  """Whether a pair's stem hashes into the hold-out fraction."""
  return stem_hash(name) < fraction


def holdout(names: list[str], fraction: float) -> set[str]:
  """The held-out names: those hashing below `fraction`, or (when none does, fraction > 0 and
  there are two or more) the one with the lowest hash, so that a small dataset keeps a val."""
  held = {n for n in names if in_holdout(n, fraction)}
  if not held and fraction > 0 and len(names) > 1:
    held = {min(names, key=stem_hash)}
  return held


def resolve_val_source(root: str | os.PathLike, layout: Layout, val_source: str = "auto") -> str:
  """folder (the dataset has a val split) or holdout (val is cut from train)."""
  if val_source not in VAL_SOURCES:
    raise DataError(f"data.val_source={val_source!r} is not one of {VAL_SOURCES}.")
  if val_source != "auto":
    return val_source
  if not layout.has_splits:
    return "holdout"
  return "folder" if layout.folders(Path(root).expanduser(), "val")[0].is_dir() else "holdout"


def split_pairs(root: str | os.PathLike, layout: Layout, split: str, *, val_source: str,
                val_fraction: float, skip_unmatched: bool = False) -> list[PairFiles]:
  """A split's pairs in natural order; a holdout's val is cut from train by hash."""
  root = Path(root).expanduser()
  if not root.is_dir():
    from p2p.data.folder import make_dataset_hint
    raise DataError(f"Dataset folder {root} does not exist. {make_dataset_hint(root)}")
  held_out = val_source == "holdout" and split in ("train", "val")
  source = "train" if held_out else split
  folders = layout.folders(root, source)
  what = f"{'The ' + source + ' split' if layout.has_splits else 'The'}"
  if layout.kind == "side_by_side":
    pairs = [PairFiles(p.name, str(p)) for p in list_files(folders[0], f"{what} pairs")]
  else:
    pairs = match(list_files(folders[0], f"{what} A"), list_files(folders[1], f"{what} B"),
                  *folders, skip_unmatched=skip_unmatched)
  if held_out:
    held = holdout([p.name for p in pairs], val_fraction)
    pairs = [p for p in pairs if (p.name in held) == (split == "val")]
    if not pairs:
      raise DataError(f"The hold-out of data.val_fraction={val_fraction} leaves no {split} pairs "
                      f"in {folders[0]}; change data.val_fraction or add a val split.")
  return pairs
