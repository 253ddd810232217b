"""p2p-serve as users meet it: a live server on a free port, driven by gradio_client and by a
real headless Chromium (Debian's chromium; .ci/run installs it)."""

import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

gradio_client = pytest.importorskip("gradio_client", reason="the serve extra: pip install -e "
                                    "'.[serve]' (make test installs it)")
from gradio_client import Client, handle_file  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
MAX_PIXELS = 2_000_000
CHROMIUM = os.environ.get("P2P_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run"]


class Server:
  """A p2p-serve subprocess; its output is kept for the assertions' messages."""

  def __init__(self, *args: str, env: dict | None = None):
    self.lines: list[str] = []
    self.proc = subprocess.Popen(
        [sys.executable, "-m", "p2p.serve", *args], cwd=ROOT, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        env={**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", **(env or {})})
    threading.Thread(target=self._read, daemon=True).start()

  def _read(self) -> None:
    for line in self.proc.stdout:
      self.lines.append(line.rstrip())

  def url(self, timeout: float = 180) -> str:
    """Waits for the 'p2p-serve: URL ...' line."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
      for line in self.lines:
        if line.startswith("p2p-serve: http"):
          return line.split()[1]
      if self.proc.poll() is not None:
        time.sleep(0.2)  # let the reader thread drain the pipe
        break
      time.sleep(0.2)
    raise AssertionError("p2p-serve did not start:\n" + "\n".join(self.lines[-30:]))

  def stop(self) -> None:
    self.proc.terminate()
    try:
      self.proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
      self.proc.kill()


@pytest.fixture(scope="module")
def server(tiny_run, tmp_path_factory):
  tmp = tmp_path_factory.mktemp("gradio")
  running = Server(f"--workdir={tiny_run}", "--port=0", f"--max_pixels={MAX_PIXELS}",
                   "--examples=2", env={"GRADIO_TEMP_DIR": str(tmp)})
  url = running.url()
  yield running, url
  running.stop()
  # No handler failed unexpectedly (a browser closing mid-request may still make uvicorn log).
  assert not any("A request failed" in line for line in running.lines), "\n".join(running.lines)


@pytest.fixture(scope="module")
def client(server):
  return Client(server[1], verbose=False)


def png(path: Path, image: np.ndarray) -> Path:
  Image.fromarray(image).save(path)
  return path


def smooth(height: int, width: int, channels: int, seed: int = 0) -> np.ndarray:
  """A smooth random uint8 image (a map-like input with structure)."""
  small = np.random.default_rng(seed).integers(0, 256, (height // 50 + 2, width // 50 + 2,
                                                        channels), np.uint8)
  mode = {3: "RGB", 4: "RGBA"}[channels]
  return np.asarray(Image.fromarray(small, mode).resize((width, height), Image.BILINEAR))


def read(path: str) -> np.ndarray:
  return np.asarray(Image.open(path))


def test_sketch_is_translated(client, tiny_run, tmp_path):
  random = client.predict(api_name="/random_map")
  canvas = read(random["composite"])
  assert canvas.shape[:2] == (32, 32)
  sketch = canvas.copy()
  sketch[14:18] = (254, 254, 252)  # a road across it
  path = png(tmp_path / "sketch.png", sketch)
  out = read(client.predict({"background": handle_file(path), "layers": [],
                             "composite": handle_file(path)}, api_name="/sketch"))
  assert out.shape == (32, 32, 3) and out.std() > 1


def test_concurrent_users_are_served_in_turn(server, tmp_path):
  paths = [png(tmp_path / f"user{i}.png", smooth(100, 120, 3, seed=i)) for i in range(4)]
  clients = [Client(server[1], verbose=False) for _ in paths]
  jobs = [c.submit(handle_file(p), api_name="/translate") for c, p in zip(clients, paths)]
  outs = [job.result(timeout=120) for job in jobs]
  assert [read(out[1]).shape for out in outs] == [(100, 120, 3)] * 4
  assert len({read(out[1]).tobytes() for out in outs}) == 4  # each user got their own


def test_large_rgba_upload_at_full_resolution(client, tmp_path):
  path = png(tmp_path / "big.png", smooth(1200, 1200, 4))
  shown_in, shown_out, download, note = client.predict(handle_file(path), api_name="/translate")
  full = read(download["value"])
  assert full.shape == (1200, 1200, 3) and full.dtype == np.uint8 and full.std() > 1
  assert read(shown_out).shape == (1200, 1200, 3)
  assert Path(download["value"]).name == "big_p2p.png"
  assert note.startswith("big.png: 1200x1200, 4 x uint8 -> 1200x1200, 3 x uint8")


def test_corrupt_upload_is_one_line_and_the_server_goes_on(client, tmp_path):
  path = tmp_path / "corrupt.jpg"
  path.write_bytes(b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4)
  with pytest.raises(AppError, match=r"^corrupt.jpg is not a decodable image") as error:
    client.predict(handle_file(path), api_name="/translate")
  assert "\n" not in str(error.value) and "Traceback" not in str(error.value)
  assert read(client.predict(api_name="/random_map")["composite"]).shape[:2] == (32, 32)


def test_oversize_and_wrong_type_uploads_are_refused(client, tmp_path):
  big = png(tmp_path / "huge.png", np.zeros((1500, 1500, 3), np.uint8))
  with pytest.raises(AppError, match=r"huge.png is 1500x1500 \(2,250,000 pixels\), over the "
                     r"limit of 2,000,000; .* --max_pixels"):
    client.predict(handle_file(big), api_name="/translate")
  text = tmp_path / "map.gif"
  text.write_bytes(b"GIF89a")
  with pytest.raises(AppError, match=r"map.gif: p2p reads .* images, not .gif"):
    client.predict(handle_file(text), api_name="/translate")


def test_second_server_on_a_busy_port_says_so(server):
  port = server[1].rstrip("/").rsplit(":", 1)[1]
  done = subprocess.run([sys.executable, "-m", "p2p.serve", "--workdir=unused", f"--port={port}"],
                        cwd=ROOT, capture_output=True, text=True, timeout=120)
  assert done.returncode == 2
  assert done.stderr.strip().splitlines() == [
      f"error: port {port} on 127.0.0.1 is in use (another p2p-serve?); pass --port=N, or "
      f"--port=0 for any free port."]


def test_without_gradio_it_names_the_extra():
  code = ("import sys; sys.modules['gradio'] = None; sys.argv = ['p2p-serve', '--workdir=x'];"
          "from p2p.serve.cli import run; run()")
  done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                        timeout=120)
  assert done.returncode == 2
  assert "pip install -e '.[serve]'" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"no Chromium at {CHROMIUM} "
                    "(apt-get install chromium chromium-driver; .ci/run does)")
def test_browser_random_map_shows_the_generated_photo(server, tmp_path):
  from playwright.sync_api import sync_playwright
  url = server[1]
  with sync_playwright() as p:
    browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
    try:
      page = browser.new_page(viewport={"width": 1280, "height": 1000})
      page.goto(url)
      page.get_by_role("button", name="Random map").click()
      shown = page.wait_for_function(
          "() => { const i = document.querySelector('#sketch-output img');"
          " return i && i.complete && i.naturalWidth > 0"
          " ? [i.naturalWidth, i.naturalHeight, i.src] : null; }", timeout=60_000).json_value()
      # A corrupt upload: one line in the page, no traceback.
      corrupt = tmp_path / "corrupt.png"
      corrupt.write_bytes(b"\x89PNG\r\n\x1a\n" + b"x" * 64)
      page.get_by_role("tab", name="Upload").click()
      page.locator("#upload-input input[type=file]").set_input_files(str(corrupt))
      toast = page.get_by_text("corrupt.png is not a decodable image")
      toast.first.wait_for(timeout=30_000)
      message = toast.first.inner_text()
      page_text = page.inner_text("body")
    finally:
      browser.close()
  width, height, src = shown
  assert "\n" not in message.strip() and "Traceback" not in page_text
  assert (width, height) == (32, 32)  # the run's output size
  with urllib.request.urlopen(src, timeout=30) as response:
    image = np.asarray(Image.open(response))
  assert image.shape == (32, 32, 3) and image.std() > 1  # not blank
