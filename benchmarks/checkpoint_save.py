"""Checkpoint save and restore time of a paper-size run (U-Net ngf 64 + 70x70 PatchGAN + Adam).

  python benchmarks/checkpoint_save.py --saves 5 --json

Builds the full train state (256 px, ngf 64, ndf 64: 57.2M parameters, 172M floats with Adam's
moments), then saves it --saves times through p2p's Checkpointer (synchronous, as training does)
and restores the newest. Reports the median save and restore seconds and, where the Checkpointer
records it, the time spent computing the arrays' checksums. Run it on two checkouts side by side
to compare versions (docs/performance.md).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--saves", type=int, default=5)
  parser.add_argument("--dir", default="", help="where to write (default: a temporary folder)")
  parser.add_argument("--json", action="store_true", help="print only the JSON line")
  args = parser.parse_args()
  import grain
  import jax

  import p2p
  from p2p.config import default_config, train_config
  from p2p.hardware import machine
  from p2p.train import parallel
  from p2p.train.checkpoint import Checkpointer
  from p2p.train.state import abstract_state, build_networks, count_params, create_train_state
  config = train_config(default_config())
  nets = build_networks(config, steps_per_epoch=1)
  mesh = parallel.make_mesh()
  state = create_train_state(nets, config, mesh)
  jax.block_until_ready(state)
  data_iter = iter(grain.MapDataset.range(8).to_iter_dataset())
  root = Path(args.dir or tempfile.mkdtemp(prefix="p2p-ckpt-bench-"))
  ckpt = Checkpointer(root / "run", max_to_keep=2)
  saves = []
  for i in range(args.saves):
    tick = time.perf_counter()
    ckpt.save(i + 1, state, data_iter, {"step": i + 1})
    saves.append(time.perf_counter() - tick)
  abstract = parallel.with_sharding(abstract_state(nets, config.data.image_size),
                                    parallel.replicated(mesh))
  tick = time.perf_counter()
  restored, _ = ckpt.restore(abstract)
  jax.block_until_ready(restored)
  restore_s = time.perf_counter() - tick
  checksum_s = getattr(ckpt, "checksum_seconds", None)
  ckpt.close()
  size = sum(f.stat().st_size for f in (root / "run" / "checkpoints" / str(args.saves)).rglob("*")
             if f.is_file())
  shutil.rmtree(root, ignore_errors=True)
  result = {"benchmark": "checkpoint_save", "p2p_version": p2p.__version__,
            "params": count_params(state.g.params) + count_params(state.d.params),
            "state_floats": count_params(state), "checkpoint_mib": round(size / 2**20, 1),
            "saves": args.saves, "save_s_median": round(statistics.median(saves), 3),
            "save_s_all": [round(s, 3) for s in saves], "restore_s": round(restore_s, 3),
            "checksum_s_per_save": (round(checksum_s / args.saves, 4)
                                    if checksum_s is not None else None),
            **machine(), "jax": jax.__version__, "backend": jax.default_backend()}
  if not args.json:
    print(f"save {result['save_s_median']} s (median of {args.saves}), restore "
          f"{result['restore_s']} s, checksums {result['checksum_s_per_save']} s per save")
  print(json.dumps(result))


if __name__ == "__main__":
  main()
