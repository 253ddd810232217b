"""The embedded default: synthetic maps and a small model; trains in minutes on a laptop CPU.

Run:   make demo   (writes data/synthetic, then runs the command below)
       python -m p2p.main --config=configs/demo.py --workdir=runs/demo
Smoke: python -m p2p.main --config=configs/demo.py:tiny --workdir=/tmp/demo_tiny
"""

import ml_collections

from configs import base


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """Synthetic maps (python -m p2p.data.synthetic --out data/synthetic), 128 px, ngf 32."""
  config = base.get_config()
  config.data.data_dir = "data/synthetic"
  config.data.preprocess = "resize"      # whole 600 px halves -> 128 px
  config.data.image_size = 128
  config.data.load_size = 143            # 286/256 of the model size, as the paper's jitter
  config.model.ngf = 32
  config.model.ndf = 32
  config.batch_size = 4
  config.num_epochs = 15                 # 750 steps of 4 images: ~3.5 min on 2 CPU cores
  config.checkpoint_every_epochs = 5
  config.log_every_steps = 25
  config.eval_examples = 16
  return base.finish(config, arg)
