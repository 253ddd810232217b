"""Downloads the pix2pix maps.tar.gz, verifies it and extracts it to DIR/train and DIR/val.

  python -m p2p.data.download --out data/maps [--url URL] [--timeout 20]
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import http.client
import os
import shutil
import socket
import sys
import tarfile
import tempfile
import threading
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path, PurePosixPath

from p2p.cli import fail
from p2p.data.errors import DataError

MAPS_URL = "http://efrosgans.eecs.berkeley.edu/pix2pix/datasets/maps.tar.gz"
# The archive's own SHA-256 is published nowhere we could find; every extracted file is checked
# against MAPS_MANIFEST instead (2194 lines: `sha256  split/name.jpg`, train 1096 + val 1098).
MAPS_SHA256: str | None = None
MAPS_MANIFEST = Path(__file__).with_name("maps_manifest.sha256")
DEFAULT_TIMEOUT_S = 20.0
_CHUNK_BYTES = 1 << 20


def download(out: str | os.PathLike, url: str = MAPS_URL, sha256: str | None = MAPS_SHA256,
             manifest: str | os.PathLike | None = MAPS_MANIFEST,
             timeout: float = DEFAULT_TIMEOUT_S, progress: bool = True) -> Path:
  """Downloads, verifies and extracts a pix2pix archive into out; returns out.

  sha256 checks the archive, manifest every extracted file (None skips either check). Nothing is
  left in out unless every check passes.
  """
  out = Path(out).expanduser().resolve()
  _check_out(out)
  created = [p for p in out.parents if not p.exists()]  # Removed again if anything fails.
  out.parent.mkdir(parents=True, exist_ok=True)
  fd, archive = tempfile.mkstemp(prefix=f".{out.name}-", suffix=".tar.gz.part", dir=out.parent)
  staging = Path(tempfile.mkdtemp(prefix=f".{out.name}-", suffix=".extract", dir=out.parent))
  done = False
  try:
    with os.fdopen(fd, "wb") as file:
      digest = _fetch(url, file, timeout, progress, out)
    if sha256 is not None and digest != sha256.lower():
      raise DataError(
          f"{url} has SHA-256 {digest}, expected {sha256.lower()}: the download is corrupt or "
          f"not the expected archive. Download it again, or pass the right --sha256.")
    extract(archive, staging)
    _check_layout(staging, url)
    if manifest is not None:
      verify(staging, manifest)
    if out.exists():
      out.rmdir()  # Empty, checked above.
    os.replace(staging, out)
    done = True
  finally:
    Path(archive).unlink(missing_ok=True)
    shutil.rmtree(staging, ignore_errors=True)
    for parent in [] if done else created:  # Deepest first.
      _remove_empty(parent)
  return out


def _remove_empty(path: Path) -> None:
  try:
    path.rmdir()
  except OSError:
    pass


def _check_out(out: Path) -> None:
  if out.exists() and (not out.is_dir() or any(out.iterdir())):
    raise DataError(f"{out} already exists and is not an empty folder. Delete it or pass another "
                    f"--out (if it already holds train/ and val/, point data.data_dir at it).")


def _fetch(url: str, file, timeout: float, progress: bool, out: Path) -> str:
  """Streams url into file and returns its SHA-256; any failure is one DataError."""
  digest = hashlib.sha256()
  try:
    _resolve(url, timeout)
    with urllib.request.urlopen(url, timeout=timeout) as response:
      total = int(response.headers.get("Content-Length") or 0) or None
      with _progress(progress, total, url) as advance:
        while chunk := response.read(_CHUNK_BYTES):
          file.write(chunk)
          digest.update(chunk)
          advance(len(chunk))
  except (OSError, http.client.HTTPException, ValueError) as e:
    reason = getattr(e, "reason", None) or e
    if isinstance(reason, (TimeoutError, socket.timeout)) or "timed out" in str(reason):
      reason = f"no answer within {timeout:g} s"
    raise DataError(
        f"Could not download {url} ({reason}). Download maps.tar.gz manually and extract it to "
        f"{out} (so that {out}/train and {out}/val exist), or pass --url with a reachable copy "
        f"(file:// works).") from None
  return digest.hexdigest()


def _resolve(url: str, timeout: float) -> None:
  """Looks the host up with a deadline: getaddrinfo itself ignores socket timeouts."""
  host = urllib.parse.urlsplit(url).hostname
  if not host or urllib.parse.urlsplit(url).scheme not in ("http", "https"):
    return
  result: list = []

  def lookup() -> None:
    try:
      result.append(socket.getaddrinfo(host, None))
    except OSError as e:
      result.append(e)

  thread = threading.Thread(target=lookup, daemon=True)
  thread.start()
  thread.join(timeout)
  if not result:
    raise TimeoutError(f"looking up {host} took over {timeout:g} s")
  if isinstance(result[0], OSError):
    raise result[0]


@contextlib.contextmanager
def _progress(enabled: bool, total: int | None, url: str) -> Iterator[Callable[[int], None]]:
  """Yields advance(n): a rich progress bar on a terminal, a no-op otherwise."""
  if not (enabled and sys.stderr.isatty()):
    yield lambda n: None
    return
  from rich import progress as rp
  columns = (rp.TextColumn("{task.description}"), rp.BarColumn(), rp.DownloadColumn(),
             rp.TransferSpeedColumn(), rp.TimeRemainingColumn())
  with rp.Progress(*columns, transient=True) as bar:
    task = bar.add_task(PurePosixPath(urllib.parse.urlsplit(url).path).name, total=total)
    yield lambda n: bar.advance(task, n)


def extract(archive: str | os.PathLike, dest: str | os.PathLike) -> None:
  """Extracts a tar archive into dest, dropping one shared top-level folder (maps/).

  Only plain files and folders inside dest are accepted; anything else is a DataError.
  """
  dest = Path(dest)
  try:
    with tarfile.open(archive) as tar:
      members = tar.getmembers()
      prefix = _common_top(members)
      keep = []
      for member in members:
        path = PurePosixPath(member.name)
        if path.is_absolute() or ".." in path.parts or not (member.isfile() or member.isdir()):
          raise DataError(
              f"{archive} holds an unsafe member {member.name!r} (absolute, '..' or a link/"
              f"device); refusing to extract it. Get the archive from a trusted source.")
        parts = path.parts[1:] if prefix else path.parts
        if not parts:
          continue
        member.name = "/".join(parts)
        keep.append(member)
      kwargs = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
      tar.extractall(dest, members=keep, **kwargs)
  except (tarfile.TarError, EOFError, OSError) as e:
    raise DataError(f"{archive} is not a readable .tar.gz ({e}). Download it again.") from None


def _common_top(members: Sequence[tarfile.TarInfo]) -> bool:
  """Whether every member sits under one top-level folder (the archive's maps/)."""
  parts = [PurePosixPath(m.name).parts for m in members]
  tops = {p[0] for p in parts if p}
  return len(tops) == 1 and all(m.isdir() for m, p in zip(members, parts) if len(p) == 1)


def _check_layout(root: Path, url: str) -> None:
  missing = [s for s in ("train", "val") if not (root / s).is_dir()]
  if missing:
    found = sorted(p.name for p in root.iterdir())
    raise DataError(f"{url} does not hold the pix2pix layout: no {'/ and '.join(missing)}/ folder "
                    f"(found: {found or 'nothing'}). Pass --url of the maps.tar.gz archive.")


def read_manifest(manifest: str | os.PathLike) -> dict[str, str]:
  """Parses `sha256  split/name.jpg` lines into {relative path: sha256}."""
  entries = {}
  for number, line in enumerate(Path(manifest).read_text().splitlines(), 1):
    if not line.strip():
      continue
    digest, _, name = line.strip().partition(" ")
    name = name.strip().lstrip("*")  # sha256sum writes `*name` in binary mode.
    if len(digest) != 64 or not name:
      raise DataError(f"{manifest}:{number} is not a `sha256  split/name.jpg` line: {line!r}.")
    entries[name] = digest.lower()
  return entries


def verify(root: str | os.PathLike, manifest: str | os.PathLike) -> None:
  """Raises DataError unless root holds exactly the manifest's files with its SHA-256 sums."""
  root = Path(root)
  expected = read_manifest(manifest)
  found = {p.relative_to(root).as_posix(): p for p in root.rglob("*") if p.is_file()}
  missing = sorted(set(expected) - set(found))
  extra = sorted(set(found) - set(expected))
  wrong = sorted(name for name in set(expected) & set(found)
                 if _sha256(found[name]) != expected[name])
  if missing or extra or wrong:
    problems = [f"{len(items)} {what} ({_few(items)})" for items, what in
                ((wrong, "with a wrong SHA-256"), (missing, "missing"), (extra, "unexpected"))
                if items]
    raise DataError(
        f"The extracted archive does not match {manifest}: {'; '.join(problems)} files. "
        f"Download the archive again (or pass --no-verify to keep a copy you trust).")


def _few(names: Sequence[str], limit: int = 5) -> str:
  more = f", ... {len(names) - limit} more" if len(names) > limit else ""
  return ", ".join(names[:limit]) + more


def _sha256(path: Path) -> str:
  digest = hashlib.sha256()
  with open(path, "rb") as file:
    while chunk := file.read(_CHUNK_BYTES):
      digest.update(chunk)
  return digest.hexdigest()


def cli(argv: Sequence[str] | None = None) -> None:
  """Command line: python -m p2p.data.download --out DIR [--url URL] [--timeout S]."""
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--out", required=True, help="folder to create with train/ and val/")
  parser.add_argument("--url", default=MAPS_URL, help="archive URL (http, https or file://)")
  parser.add_argument("--sha256", default=MAPS_SHA256, help="expected SHA-256 of the archive")
  parser.add_argument("--manifest", default=str(MAPS_MANIFEST),
                      help="`sha256  split/name` file every extracted file must match")
  parser.add_argument("--no-verify", action="store_true", help="skip the manifest check")
  parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S,
                      help="seconds to wait for the server before giving up (no retries)")
  args = parser.parse_args(argv)
  try:
    out = download(args.out, url=args.url, sha256=args.sha256,
                   manifest=None if args.no_verify else args.manifest, timeout=args.timeout)
  except DataError as e:
    fail(str(e))
  print(f"Extracted {args.url} to {out} (train/ and val/).")


if __name__ == "__main__":
  cli()
