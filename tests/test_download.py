"""Download command: verified extraction from a local archive and fast, clear failures."""

import hashlib
import io
import socket
import subprocess
import sys
import tarfile
import threading
import time
from pathlib import Path

import pytest

from conftest import make_dataset
from p2p.data import download as dl
from p2p.data.errors import DataError
from p2p.data.folder import list_images

SIZES = {"train": 3, "val": 2}


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> tuple[Path, str, Path]:
  """A maps.tar.gz with a top-level maps/ folder, its SHA-256 and a manifest of its files."""
  root = tmp_path_factory.mktemp("archive")
  maps = make_dataset(root / "maps", SIZES)
  path = root / "maps.tar.gz"
  with tarfile.open(path, "w:gz") as tar:
    tar.add(maps, arcname="maps")
  lines = [f"{_sha256(p)}  {p.relative_to(maps).as_posix()}" for p in sorted(maps.rglob("*.jpg"))]
  manifest = root / "manifest.sha256"
  manifest.write_text("\n".join(lines) + "\n")
  return path, _sha256(path), manifest


def _sha256(path: Path) -> str:
  return hashlib.sha256(path.read_bytes()).hexdigest()


def _leftovers(parent: Path) -> list[str]:
  return sorted(p.name for p in parent.iterdir())


def test_file_url_with_sha256_and_manifest(archive, tmp_path):
  path, digest, manifest = archive
  out = dl.download(tmp_path / "data", url=path.as_uri(), sha256=digest, manifest=manifest)
  assert out == (tmp_path / "data").resolve()
  assert sorted(p.name for p in out.iterdir()) == ["train", "val"]
  for split, count in SIZES.items():
    assert [p.name for p in list_images(out, split)] == [f"{i}.jpg" for i in range(1, count + 1)]
  assert _leftovers(tmp_path) == ["data"]  # No temp archive or staging folder left behind.


def test_into_existing_empty_folder_without_checks(archive, tmp_path):
  path, _, _ = archive
  (tmp_path / "data").mkdir()
  dl.download(tmp_path / "data", url=path.as_uri(), sha256=None, manifest=None)
  assert len(list_images(tmp_path / "data", "train")) == SIZES["train"]


def test_wrong_sha256_leaves_nothing(archive, tmp_path):
  path, _, manifest = archive
  with pytest.raises(DataError, match=r"has SHA-256 [0-9a-f]{64}, expected 0{64}"):
    dl.download(tmp_path / "new" / "data", url=path.as_uri(), sha256="0" * 64, manifest=manifest)
  assert _leftovers(tmp_path) == []  # Not even the parent folder it had to create.


def test_manifest_mismatch_names_files_and_leaves_nothing(archive, tmp_path):
  path, _, manifest = archive
  lines = manifest.read_text().splitlines()
  bad = tmp_path / "bad.sha256"
  bad.write_text("\n".join(["f" * 64 + lines[0][64:]] + lines[2:] + ["e" * 64 + "  val/99.jpg"]))
  out = tmp_path / "out"
  with pytest.raises(DataError) as error:
    dl.download(out / "data", url=path.as_uri(), manifest=bad)
  message = str(error.value)
  assert "1 with a wrong SHA-256 (train/1.jpg)" in message
  assert "1 missing (val/99.jpg)" in message
  assert "1 unexpected (train/2.jpg)" in message
  assert not out.exists()  # Nor the parent folder it had to create.


def test_shipped_manifest_covers_the_whole_archive():
  entries = dl.read_manifest(dl.MAPS_MANIFEST)
  assert len(dl.MAPS_MANIFEST.read_text().splitlines()) == len(entries) == 2194
  assert sum(name.startswith("train/") for name in entries) == 1096
  assert sum(name.startswith("val/") for name in entries) == 1098
  assert dl.MAPS_URL == "http://efrosgans.eecs.berkeley.edu/pix2pix/datasets/maps.tar.gz"


def test_shipped_manifest_agrees_with_real_maps(real_maps):
  entries = dl.read_manifest(dl.MAPS_MANIFEST)
  checked = dl.read_manifest(real_maps / "SHA256SUMS")
  assert len(checked) > 1000 and all(entries[name] == digest for name, digest in checked.items())


def test_refused_connection_fails_fast_and_clearly(tmp_path):
  url = "http://127.0.0.1:9/maps.tar.gz"
  start = time.monotonic()
  with pytest.raises(DataError, match=r"Could not download http://127\.0\.0\.1:9/maps\.tar\.gz .*"
                                      r"manually and extract it to .*or pass --url"):
    dl.download(tmp_path / "data", url=url, timeout=5)
  assert time.monotonic() - start < 3
  assert _leftovers(tmp_path) == []


def test_silent_server_times_out(tmp_path):
  server = socket.socket()
  server.bind(("127.0.0.1", 0))
  server.listen(1)
  accepted = []
  thread = threading.Thread(target=lambda: accepted.append(server.accept()), daemon=True)
  thread.start()
  url = f"http://127.0.0.1:{server.getsockname()[1]}/maps.tar.gz"
  start = time.monotonic()
  try:
    with pytest.raises(DataError, match=r"no answer within 1 s\)"):
      dl.download(tmp_path / "data", url=url, timeout=1)
    assert time.monotonic() - start < 4
  finally:
    for connection, _ in accepted:
      connection.close()
    server.close()
  assert _leftovers(tmp_path) == []


def test_missing_local_file_is_a_download_error(tmp_path):
  with pytest.raises(DataError, match="Could not download file://"):
    dl.download(tmp_path / "data", url=(tmp_path / "nope.tar.gz").as_uri())


def _tar_with(path: Path, members: dict[str, bytes], symlink: str | None = None) -> Path:
  with tarfile.open(path, "w:gz") as tar:
    for name, data in members.items():
      info = tarfile.TarInfo(name)
      info.size = len(data)
      tar.addfile(info, io.BytesIO(data))
    if symlink:
      info = tarfile.TarInfo(symlink)
      info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
      tar.addfile(info)
  return path


@pytest.mark.parametrize("evil", ["../evil", "maps/../../evil", "/tmp/evil"])
def test_path_traversal_is_rejected(tmp_path, evil):
  path = _tar_with(tmp_path / "evil.tar.gz", {"maps/train/1.jpg": b"x", evil: b"owned"})
  out = tmp_path / "out"
  with pytest.raises(DataError, match="unsafe member"):
    dl.download(out / "data", url=path.as_uri(), manifest=None)
  assert not out.exists() and not (tmp_path / "evil").exists()


def test_links_are_rejected(tmp_path):
  path = _tar_with(tmp_path / "link.tar.gz", {"maps/train/1.jpg": b"x"}, symlink="maps/val/1.jpg")
  with pytest.raises(DataError, match="unsafe member 'maps/val/1.jpg'"):
    dl.download(tmp_path / "out", url=path.as_uri(), manifest=None)


def test_archive_without_splits_is_rejected(tmp_path):
  path = _tar_with(tmp_path / "other.tar.gz", {"stuff/readme.txt": b"hi", "other/a.txt": b"x"})
  with pytest.raises(DataError, match=r"no train/ and val/ folder"):
    dl.download(tmp_path / "out", url=path.as_uri(), manifest=None)


def test_non_empty_out_is_refused(archive, tmp_path):
  path, _, _ = archive
  (tmp_path / "data").mkdir()
  (tmp_path / "data" / "keep.txt").write_text("mine")
  with pytest.raises(DataError, match="already exists and is not an empty folder"):
    dl.download(tmp_path / "data", url=path.as_uri(), manifest=None)
  assert (tmp_path / "data" / "keep.txt").read_text() == "mine"


@pytest.mark.slow
def test_cli_error_is_one_line(tmp_path):
  result = subprocess.run(
      [sys.executable, "-m", "p2p.data.download", "--out", str(tmp_path / "data"),
       "--url", "http://127.0.0.1:9/maps.tar.gz", "--timeout", "2"],
      capture_output=True, text=True, timeout=60, cwd=Path(__file__).resolve().parents[1])
  assert result.returncode == 2
  assert result.stderr.startswith("error: Could not download http://127.0.0.1:9/maps.tar.gz")
  assert "Traceback" not in result.stderr


def test_cli_downloads(archive, tmp_path):
  path, digest, manifest = archive
  dl.cli(["--out", str(tmp_path / "data"), "--url", path.as_uri(), "--sha256", digest,
          "--manifest", str(manifest)])
  assert len(list_images(tmp_path / "data", "val")) == SIZES["val"]
