"""The seed's training 5: training 7 with the 16x16 PatchGAN.

Run:   python -m p2p.main --config=configs/rf16_resize.py --workdir=runs/rf16_resize
Smoke: python -m p2p.main --config=configs/rf16_resize.py:tiny --workdir=/tmp/rf16_resize_tiny
Data:  --config.data.data_dir=DIR (default ../shared/data/maps).
"""

import ml_collections

from configs import base


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """The seed's training 5."""
  config = base.get_config()
  config.num_epochs = 400
  config.data.preprocess = "resize"
  config.model.receptive_field = 16
  return base.finish(config, arg)
