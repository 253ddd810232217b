"""The embedded default: synthetic maps and a small model; trains in minutes on a laptop CPU.

Run:   make demo   (writes data/synthetic, then runs the command below)
       p2p-train --config=configs/demo.py --workdir=runs/demo
Smoke: p2p-train --config=configs/demo.py:tiny --workdir=/tmp/demo_tiny

Choices (everything else is the paper's default in p2p/config.py):
- data_dir data/synthetic: `python -m p2p.data.synthetic --out data/synthetic --train 200
  --val 16 --seed 0` writes it in seconds (no download).
- preprocess resize to 128 px with 143 px jitter (the paper's 286/256 ratio), ngf = ndf = 32,
  batch 4, 15 epochs: 750 steps, ~4 minutes on 2 CPU cores.
- checkpoints every 5 epochs, metrics every 25 steps, 16 val examples scored.
"""

import ml_collections

from p2p.config import default_config, finish


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """Synthetic maps, 128 px, ngf 32, batch 4, 15 epochs."""
  config = default_config()
  config.data.data_dir = "data/synthetic"
  config.data.preprocess = "resize"
  config.data.image_size = 128
  config.data.load_size = 143
  config.model.ngf = 32
  config.model.ndf = 32
  config.batch_size = 4
  config.num_epochs = 15
  config.checkpoint_every_epochs = 5
  config.log_every_steps = 25
  config.eval_examples = 16
  return finish(config, arg)
