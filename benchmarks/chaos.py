"""Kill a training run at random moments, resume it each time, compare with an uninterrupted run.

  python benchmarks/chaos.py --kills 30 --sigkill_fraction 0.4 --seed 0 --json

Trains configs/rf70_resize.py:tiny on synthetic maps (checkpoint every epoch, metrics every
step) twice: once straight through, once killed --kills times, each time by SIGKILL (with
probability --sigkill_fraction) or SIGTERM, then relaunched with the same command. A kill comes
at a random moment after the start (start-up, compiling, training, validating, saving) or, with
probability --save_fraction, the moment a checkpoint save is seen in progress. At the end the
two runs' final checkpoints must hold bitwise-equal parameters, BatchNorm statistics, optimizer
state and PRNG key, and their metrics logs the same losses for every step, each exactly once.
Prints one JSON summary line (exit code 1 when a check fails).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def command(data: Path, workdir: Path, epochs: int) -> list[str]:
  """The training command both runs use."""
  return [sys.executable, "-m", "p2p.main", "--config=configs/rf70_resize.py:tiny",
          f"--workdir={workdir}", f"--config.data.data_dir={data}",
          f"--config.num_epochs={epochs}", "--config.max_steps=0",
          "--config.checkpoint_every_epochs=1", "--config.log_every_steps=1", "--noprogress"]


def temporary(workdir: Path) -> set[str]:
  """Orbax's temporary checkpoint folders (a save in progress, or one a SIGKILL cut short)."""
  folder = workdir / "checkpoints"
  return {p.name for p in folder.iterdir() if "tmp" in p.name} if folder.is_dir() else set()


def saving(workdir: Path, leftovers: set[str]) -> bool:
  """Whether a checkpoint is being written now (a temporary folder that was not there before)."""
  return bool(temporary(workdir) - leftovers)


def run_to_end(cmd: list[str], log: Path) -> float:
  """Runs a command to completion (exit 0 required); its wall time."""
  tick = time.perf_counter()
  with log.open("a") as out:
    code = subprocess.run(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT).returncode
  if code:
    raise SystemExit(f"{' '.join(cmd)} failed with {code}; see {log}")
  return time.perf_counter() - tick


def kill_once(cmd: list[str], workdir: Path, log: Path, rng: np.random.Generator,
              run_s: float, sigkill_fraction: float, save_fraction: float) -> dict:
  """Starts the run, kills it once (or finds it finished), waits for it; what happened."""
  sig = signal.SIGKILL if rng.random() < sigkill_fraction else signal.SIGTERM
  at_save = rng.random() < save_fraction
  delay = rng.uniform(0.2, 0.8 * run_s)
  leftovers = temporary(workdir)
  with log.open("a") as out:
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    start = time.perf_counter()
    during_save = False
    while proc.poll() is None:
      elapsed = time.perf_counter() - start
      if at_save and saving(workdir, leftovers):
        during_save = True
        break
      if not at_save and elapsed >= delay:
        during_save = saving(workdir, leftovers)
        break
      if at_save and elapsed > 3 * run_s:  # no save came: kill where it stands
        break
      time.sleep(0.002)
    finished = proc.poll() is not None
    if not finished:
      proc.send_signal(sig)
    code = proc.wait(timeout=600)
  if code not in (0, -signal.SIGTERM, -signal.SIGKILL):
    raise SystemExit(f"the run exited with {code} after a kill; see {log}")
  return {"signal": None if finished else sig.name, "during_save": during_save and not finished,
          "after_s": round(time.perf_counter() - start, 2), "exit": code}


def final_state(workdir: Path) -> dict[str, np.ndarray]:
  """Every array of the newest checkpoint (verified), by name."""
  import jax

  from p2p.infer.load import _restore
  from p2p.train.checkpoint import Checkpointer
  from p2p.train.checksums import host_copy, leaf_name
  ckpt = Checkpointer(workdir)
  try:
    _, _, state = _restore(ckpt, ckpt.latest_step(), workdir)
  finally:
    ckpt.close()
  return {leaf_name(p): host_copy(x) for p, x in jax.tree_util.tree_flatten_with_path(state)[0]}


def metrics(workdir: Path) -> list[dict]:
  """The metrics log's loss rows, in order."""
  rows = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
  return [{k: v for k, v in r.items() if not k.startswith("perf/")} for r in rows
          if "l1_loss" in r]


def compare(straight: Path, chaotic: Path) -> dict:
  """The checks: bitwise-equal final state, the same metrics rows, each step once."""
  a, b = final_state(straight), final_state(chaotic)
  differ = sorted(k for k in set(a) | set(b)
                  if k not in a or k not in b or a[k].dtype != b[k].dtype
                  or a[k].tobytes() != b[k].tobytes())
  ma, mb = metrics(straight), metrics(chaotic)
  steps = [r["step"] for r in mb]
  return {"arrays": len(a), "arrays_differing": differ[:10],
          "state_bitwise_equal": not differ,
          "steps_logged": len(steps), "steps_expected": len(ma),
          "steps_duplicated": sorted({s for s in steps if steps.count(s) > 1}),
          "steps_missing": sorted({r["step"] for r in ma} - set(steps)),
          "metrics_equal": ma == mb}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--kills", type=int, default=5)
  parser.add_argument("--sigkill_fraction", type=float, default=0.4)
  parser.add_argument("--save_fraction", type=float, default=0.3,
                      help="kills aimed at the moment a checkpoint save is in progress")
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--epochs", type=int, default=12, help="4 steps each")
  parser.add_argument("--max_delay", type=float, default=0.0,
                      help="latest kill moment after a start, s (0: 0.8 x the straight run's "
                           "time); with many kills, a long run and a short delay")
  parser.add_argument("--dir", default="", help="work folder (default: a temporary one)")
  parser.add_argument("--json", action="store_true", help="print only the JSON line")
  args = parser.parse_args()
  os.environ.setdefault("WANDB_MODE", "disabled")
  from p2p.data import synthetic
  from p2p.hardware import machine
  root = Path(args.dir or tempfile.mkdtemp(prefix="p2p-chaos-"))
  data = synthetic.write_dataset(root / "maps", train=4, val=2, seed=0, size=64)
  log = root / "chaos.log"
  straight_s = run_to_end(command(data, root / "straight", args.epochs), log)
  rng = np.random.default_rng(args.seed)
  cmd = command(data, root / "chaos", args.epochs)
  window = args.max_delay / 0.8 if args.max_delay else straight_s
  events = [kill_once(cmd, root / "chaos", log, rng, window, args.sigkill_fraction,
                      args.save_fraction) for _ in range(args.kills)]
  relaunches = sum(e["signal"] is not None for e in events)
  run_to_end(cmd, log)
  checks = compare(root / "straight", root / "chaos")
  ok = (checks["state_bitwise_equal"] and checks["metrics_equal"]
        and not checks["steps_duplicated"] and not checks["steps_missing"])
  result = {"benchmark": "chaos", "ok": ok, "kills": relaunches,
            "sigkill": sum(e["signal"] == "SIGKILL" for e in events),
            "sigterm": sum(e["signal"] == "SIGTERM" for e in events),
            "during_save": sum(e["during_save"] for e in events),
            "finished_before_kill": args.kills - relaunches, "seed": args.seed,
            "steps": args.epochs * 4, "straight_run_s": round(straight_s, 1), **checks,
            "events": events, **machine(), "workdir": str(root)}
  if not args.json:
    for e in events:
      print(f"kill: {e}")
  print(json.dumps(result))
  sys.exit(0 if ok else 1)


if __name__ == "__main__":
  main()
