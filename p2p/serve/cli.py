"""p2p-serve --workdir=RUN [--host=127.0.0.1] [--port=7860] [--share]: a run as a web page.

Loads the run's newest checkpoint (p2p.load), compiles the sampler for one tile, makes the
examples (synthetic maps; the run's val pairs when its data folder is present) and serves the
Gradio page until interrupted. docs/serve.md explains the page and every flag.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import sys
import time
from pathlib import Path

from absl import flags

from p2p import cli
from p2p.serve.engine import DEFAULT_MAX_PIXELS

INSTALL_HINT = ("p2p-serve needs Gradio, an optional extra: pip install -e '.[serve]' in a "
                "checkout (or pip install 'p2p[serve]').")

_WORKDIR = flags.DEFINE_string("workdir", None, "Run folder with checkpoints (p2p.main's).")
_STEP = flags.DEFINE_integer("step", None, "Checkpoint step; default: the newest.")
_HOST = flags.DEFINE_string("host", "127.0.0.1", "Address to listen on (0.0.0.0: every "
                            "interface).")
_PORT = flags.DEFINE_integer("port", 7860, "Port; 0 = any free port.")
_SHARE = flags.DEFINE_bool("share", False, "Also open a public *.gradio.live link (Gradio's "
                           "tunnel; off by default).")
_MAX_PIXELS = flags.DEFINE_integer("max_pixels", DEFAULT_MAX_PIXELS, "Largest upload in pixels "
                                   "(width x height); larger ones are refused. 0 = no limit.")
_EXAMPLES = flags.DEFINE_integer("examples", 4, "Synthetic examples, and val examples (with "
                                 "ground truth) when the run's data folder is present.")
_SEED = flags.DEFINE_integer("seed", 0, "PRNG seed for dropout (the paper's test-time mode).")
_EMA = flags.DEFINE_bool("ema", True, "Serve the EMA weights of runs that kept them.")
flags.mark_flag_as_required("workdir")


def free_port(host: str) -> int:
  """A port the OS says is free on host now."""
  with socket.socket() as s:
    s.bind((host, 0))
    return s.getsockname()[1]


def port_in_use(host: str, port: int) -> bool:
  """Whether something already listens on host:port."""
  with socket.socket() as s:
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server will (TIME_WAIT)
    try:
      s.bind((host, port))
    except OSError:
      return True
  return False


def main(argv: list[str]) -> None:
  """Loads the run, builds the page and serves it until interrupted."""
  cli.check_args(argv)
  os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
  host, port = _HOST.value, _PORT.value or free_port(_HOST.value)
  if port_in_use(host, port):
    cli.fail(f"port {port} on {host} is in use (another p2p-serve?); pass --port=N, or "
             f"--port=0 for any free port.")
  try:
    import gradio  # noqa: F401
  except ImportError:
    cli.fail(INSTALL_HINT)
  cli.quiet_library_logs()
  logging.getLogger("httpx").setLevel(logging.WARNING)  # Gradio's own start-up requests
  import p2p
  from p2p.serve import app as page
  from p2p.serve import examples, info
  from p2p.serve.engine import Engine

  gen = p2p.load(_WORKDIR.value, _STEP.value, ema=_EMA.value)
  engine = Engine(gen, max_pixels=_MAX_PIXELS.value, seed=_SEED.value)
  logging.info("Compiled the one-tile sampler in %.1f s.", engine.warm_up())
  config = info.run_config(_WORKDIR.value, gen.step)
  shown = (examples.write_synthetic(engine.out_dir / "examples", _EXAMPLES.value, gen.data)
           + examples.write_val(engine.out_dir / "examples", _EXAMPLES.value, gen.data,
                                gen.ranges))
  limits = (f"uploads up to {engine.max_pixels / 1e6:.1f} MP, tiles of {gen.image_size} px "
            f"overlapping by {gen.image_size // 2}, per-image BatchNorm statistics and dropout "
            f"(the paper's test mode), seed {engine.seed}.") if engine.max_pixels else \
      "uploads of any size."
  title = f"{Path(_WORKDIR.value).resolve().name} ({gen.data.direction})"
  demo = page.build(engine, info.describe(_WORKDIR.value, gen, config, limits), shown, title)
  demo.queue(default_concurrency_limit=1, max_size=64)
  try:
    _, url, share_url = demo.launch(
        server_name=host, server_port=port, share=_SHARE.value, prevent_thread_lock=True,
        quiet=True, theme=page.theme(), css=page.CSS, allowed_paths=[str(engine.out_dir)],
        max_file_size=page.MAX_FILE_SIZE, footer_links=["api", "settings"])
  except OSError as e:
    cli.fail(f"could not listen on {host}:{port} ({e}); pass another --port.")
  print(f"p2p-serve: {url} serves {_WORKDIR.value} (step {gen.step})"
        + (f"; public link {share_url}" if share_url else "") + ". Ctrl+C stops it.", flush=True)
  signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # stop as on Ctrl+C, files removed
  try:
    while True:
      time.sleep(3600)
  except KeyboardInterrupt:
    pass
  finally:
    demo.close()
    shutil.rmtree(engine.out_dir, ignore_errors=True)


def run() -> None:
  """The p2p-serve console script."""
  cli.run(main)


if __name__ == "__main__":
  run()
