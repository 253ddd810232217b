"""The seed's training 5: training 7 (rf70_resize) with the 16x16 PatchGAN.

Run:   p2p-train --config=configs/rf16_resize.py --workdir=runs/rf16_resize
Smoke: p2p-train --config=configs/rf16_resize.py:tiny --workdir=/tmp/rf16_resize_tiny

Choices (everything else is the paper's default in p2p/config.py):
- receptive_field 16: the 16x16 PatchGAN (local texture only).
- preprocess resize, num_epochs 400: as rf70_resize.
"""

import ml_collections

from p2p.config import default_config, finish


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """The seed's training 5."""
  config = default_config()
  config.num_epochs = 400
  config.data.preprocess = "resize"
  config.model.receptive_field = 16
  return finish(config, arg)
