"""The seed's training 7: batch 1, 70x70 PatchGAN, halves resized to 256, 400 epochs.

Run:   python -m p2p.main --config=configs/rf70_resize.py --workdir=runs/rf70_resize
Smoke: python -m p2p.main --config=configs/rf70_resize.py:tiny --workdir=/tmp/rf70_resize_tiny
Data:  --config.data.data_dir=DIR (default ../shared/data/maps).
"""

import ml_collections

from configs import base


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """The seed's training 7."""
  config = base.get_config()
  config.num_epochs = 400
  config.data.preprocess = "resize"
  return base.finish(config, arg)
