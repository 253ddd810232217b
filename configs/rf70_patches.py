"""The seed's training 9: batch 1, 70x70 PatchGAN, native-scale 256 px patches, 200 epochs.

Run:   p2p-train --config=configs/rf70_patches.py --workdir=runs/rf70_patches
Smoke: p2p-train --config=configs/rf70_patches.py:tiny --workdir=/tmp/rf70_patches_tiny

Choices (everything else is the paper's default in p2p/config.py):
- patch_layout grid: the seed's 4 non-overlapping 256 px tiles per 600 px half.
"""

import ml_collections

from p2p.config import default_config, finish


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """The seed's training 9."""
  config = default_config()
  config.data.patch_layout = "grid"
  return finish(config, arg)
