"""The seed's training 3: batch 10, 70x70 PatchGAN, native-scale 256 px patches, 200 epochs.

Run:   p2p-train --config=configs/b10_patches.py --workdir=runs/b10_patches
Smoke: p2p-train --config=configs/b10_patches.py:tiny --workdir=/tmp/b10_patches_tiny

Choices (everything else is the paper's default in p2p/config.py):
- batch_size 10 (a multiple of the device count on multi-GPU runs).
- The discriminator keeps the original strides (last two convs stride 1), which the seed's
  batch runs got wrong.
- patch_layout grid: the seed's 4 non-overlapping 256 px tiles per 600 px half.
"""

import ml_collections

from p2p.config import default_config, finish


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """The seed's training 3."""
  config = default_config()
  config.batch_size = 10
  config.data.patch_layout = "grid"
  return finish(config, arg)
