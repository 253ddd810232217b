"""The seed's training 7: batch 1, 70x70 PatchGAN, whole halves resized to 256, 400 epochs.

Run:   p2p-train --config=configs/rf70_resize.py --workdir=runs/rf70_resize
Smoke: p2p-train --config=configs/rf70_resize.py:tiny --workdir=/tmp/rf70_resize_tiny

Choices (everything else is the paper's default in p2p/config.py):
- preprocess resize: each 600 px half resized to 286, cropped to 256 (the paper's setting).
- num_epochs 400: the seed's length for resized halves (one example per image, not four).
"""

import ml_collections

from p2p.config import default_config, finish


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """The seed's training 7."""
  config = default_config()
  config.num_epochs = 400
  config.data.preprocess = "resize"
  return finish(config, arg)
