"""The seed's training 8: training 9 (rf70_patches) with the 286x286 PatchGAN.

Run:   p2p-train --config=configs/rf286_patches.py --workdir=runs/rf286_patches
Smoke: p2p-train --config=configs/rf286_patches.py:tiny --workdir=/tmp/rf286_patches_tiny

Choices (everything else is the paper's default in p2p/config.py):
- receptive_field 286: the 286x286 PatchGAN (an image-level D at 256 px).
- patch_layout grid: the seed's 4 non-overlapping 256 px tiles per 600 px half.
"""

import ml_collections

from p2p.config import default_config, finish


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """The seed's training 8."""
  config = default_config()
  config.model.receptive_field = 286
  config.data.patch_layout = "grid"
  return finish(config, arg)
