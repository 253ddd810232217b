"""What every p2p command does around its work: config paths, one-line errors, quiet logs."""

from __future__ import annotations

import logging
import os
import platform
import re
import sys
import tempfile
from pathlib import Path
from collections.abc import Callable
from typing import Any

from typing import NoReturn

from absl import app, flags
from absl import logging as absl_logging

from p2p.errors import UserError

PROJECT_ROOT = Path(__file__).resolve().parents[1]
EXPECTED_FAILURE = 2  # the exit code of every expected failure (bad input, flag, path or run)
# Images above this many pixels are refused from their header (--max_pixels), before decoding:
# 2^28 = 16384 x 16384, a whole satellite scene, well past Pillow's 89 MP bomb warning.
DEFAULT_MAX_PIXELS = 2 ** 28
HUGEPAGE_MALLOC = "glibc.malloc.hugetlb=1"
NO_MALLOC_TUNING = "P2P_NO_MALLOC_TUNING"


def use_hugepage_malloc() -> None:
  """Re-executes this command once with glibc's huge-page malloc: CPU train steps ~14% faster.

  XLA:CPU frees and re-faults its ~0.5 GB scratch buffer every step; with transparent huge
  pages that is ~500 page faults instead of ~140,000. glibc reads GLIBC_TUNABLES only when a
  process starts, hence the re-exec (same pid). Set P2P_NO_MALLOC_TUNING=1 to skip it.
  """
  tunables = os.environ.get("GLIBC_TUNABLES", "")
  if (sys.platform != "linux" or platform.libc_ver()[0] != "glibc" or "hugetlb" in tunables
      or os.environ.get(NO_MALLOC_TUNING)):
    return
  env = {**os.environ, NO_MALLOC_TUNING: "1",
         "GLIBC_TUNABLES": ":".join(filter(None, [tunables, HUGEPAGE_MALLOC]))}
  sys.stdout.flush()
  sys.stderr.flush()
  os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], env)


def resolve_config_path(argv: list[str]) -> list[str]:
  """argv with a --config file found from any directory: as given, else in the project's configs/.

  A config file imports only p2p, so it runs from anywhere; this lets `p2p-train
  --config=configs/rf70_patches.py` (or `--config=rf70_patches.py`) work outside the checkout.
  """
  out = []
  for arg in argv:
    if arg.startswith("--config="):
      path, colon, extra = arg[len("--config="):].partition(":")
      if not Path(path).expanduser().exists():
        for candidate in (PROJECT_ROOT / path, PROJECT_ROOT / "configs" / Path(path).name):
          if candidate.is_file():
            arg = f"--config={candidate}{colon}{extra}"
            break
    out.append(arg)
  return out


def run(main: Callable[[list[str]], None], tune_malloc: bool = False) -> None:
  """Runs an absl main with p2p's flag handling: `python -m p2p.X` and the p2p-X scripts."""
  if tune_malloc:
    use_hugepage_malloc()
  sys.argv = resolve_config_path(sys.argv)
  app.run(expected_failures(main), flags_parser=parse_flags)


def fail(message: str) -> NoReturn:
  """Ends the command: one line `error: ...` on stderr, exit code 2 (an expected failure)."""
  print(f"error: {' '.join(str(message).split())}", file=sys.stderr, flush=True)
  raise SystemExit(EXPECTED_FAILURE)


def path_error(error: OSError) -> str:
  """One line for a file-system error: the path, the reason and what to do."""
  path = error.filename or "a path"
  if isinstance(error, FileNotFoundError):
    return f"{path} does not exist ({error.strerror}); check the path."
  return (f"{path} cannot be used ({error.strerror}); pick a path you can write to, or fix its "
          f"permissions.")


def expected_failures(main: Callable[[list[str]], None]) -> Callable[[list[str]], None]:
  """main, with p2p's UserErrors and unusable paths as fail(); anything else keeps its traceback."""
  def wrapped(argv: list[str]) -> None:
    try:
      main(argv)
    except UserError as e:
      fail(str(e))
    except (PermissionError, FileNotFoundError, IsADirectoryError, NotADirectoryError) as e:
      fail(path_error(e))
  return wrapped


def check_args(argv: list[str]) -> None:
  """fail() on positional arguments (every p2p command takes flags only)."""
  if len(argv) > 1:
    fail(f"unexpected arguments {argv[1:]}; p2p's commands take --flags only (--helpshort).")


def check_writable(path: str | os.PathLike, flag: str, folder: bool = False) -> Path:
  """The path, after proving its folder can take a new file (created if missing); else fail().

  folder: the path is itself a folder to write into; otherwise a file (its parent is tried).
  """
  path = Path(path)
  where = path if folder else path.parent
  blocker = next((p for p in (where, *where.parents) if p.exists() and not p.is_dir()), None)
  if blocker is not None:
    fail(f"{flag}={path} cannot be written: {blocker} is a file, not a folder; pick another "
         f"{flag}.")
  try:
    where.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=where, prefix=".p2p-write-test-"):
      pass
    if not folder and path.is_dir():
      raise IsADirectoryError(21, "Is a directory", str(path))
  except OSError as e:
    fail(f"{flag}={path} is not writable: {e.strerror or e} ({e.filename or where}); pick "
         f"another {flag}.")
  return path


class _WarningsOnly(logging.Filter):
  def filter(self, record: logging.LogRecord) -> bool:
    return record.levelno >= logging.WARNING


def quiet_library_logs() -> None:
  """Libraries logging through absl (Orbax, Grain) show warnings only; ours keep INFO.

  --verbosity=1 (debug) shows everything.
  """
  if absl_logging.get_verbosity() < absl_logging.DEBUG:
    absl_logging.get_absl_logger().addFilter(_WarningsOnly())
    logging.getLogger("jax").setLevel(logging.WARNING)
  os.environ.setdefault("WANDB_SILENT", "true")


def parse_flags(argv: list[str]) -> list[str]:
  """absl flag parsing for app.run, with one-line errors for config mistakes (no tracebacks)."""
  try:
    return flags.FLAGS(argv)
  except flags.Error as e:
    fail(f"{_cause(str(e))} (--helpshort lists the flags)")
  except (AttributeError, KeyError) as e:  # ml_collections: an unknown --config.<field>
    fail(_unknown_field(argv, e))


def _cause(message: str) -> str:
  """The flag and the last line of an error that ml_collections wraps around a traceback."""
  missing = re.findall(r"Flag (--\w+) must have a value other than None", message)
  if missing:
    return f"{' and '.join(dict.fromkeys(missing))} {'is' if len(missing) == 1 else 'are'} required"
  lines = [line.strip() for line in message.splitlines() if line.strip()]
  if len(lines) <= 1:
    return message.strip()
  flag = lines[0].split(": Error whilst parsing config file")[0].rstrip(":")
  return f"{flag}: {lines[-1]}"


def _unknown_field(argv: list[str], error: Exception) -> str:
  """Names the --config.<field> override that does not exist, with ml_collections' suggestion."""
  text = str(error)
  found = re.search(r"[A-Za-z_]\w*", text)
  key = found.group(0) if found else text
  hint = re.search(r'Did you mean "(\w+)"', text)
  flag = next((a.split("=")[0] for a in argv
               if a.startswith("--config.") and key in a.split("=")[0].split(".")),
              f"--config.{key}")
  return (f"{flag}: the config has no field {key!r}"
          f"{f' (did you mean {hint.group(1)!r}?)' if hint else ''}. "
          f"Every field is listed, with its meaning, in docs/training.md.")


def config_value(holder: flags.FlagHolder) -> Any:
  """The --config flag's ConfigDict; a config file that fails to load exits with one line."""
  try:
    config = holder.value
    config.keys()  # a file that failed to load gives a placeholder that raises on first use
    return config
  except Exception as e:  # noqa: BLE001 - a user's config file can raise anything.
    lines = [line.strip() for line in str(e.__cause__ or e).splitlines() if line.strip()]
    path = flags.FLAGS[holder.name].serialize().split("=", 1)[-1]
    fail(f"--config={path} could not be loaded: {lines[-1] if lines else e!r}")


def default_cache_dir() -> str:
  """~/.cache/p2p/jax (XDG_CACHE_HOME respected)."""
  root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
  return os.path.join(root, "p2p", "jax")


def use_compilation_cache(path: str) -> None:
  """Persistent XLA compilation cache: a repeated or resumed run skips most compiling.

  An explicit JAX_COMPILATION_CACHE_DIR in the environment wins; an empty path turns it off.
  """
  import jax
  path = os.environ.get("JAX_COMPILATION_CACHE_DIR") or path
  if not path:
    return
  jax.config.update("jax_compilation_cache_dir", os.path.expanduser(path))
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)
