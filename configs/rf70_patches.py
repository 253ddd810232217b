"""The seed's training 9: batch 1, 70x70 PatchGAN, native-scale 256 patches, 200 epochs.

Run:   python -m p2p.main --config=configs/rf70_patches.py --workdir=runs/rf70_patches
Smoke: python -m p2p.main --config=configs/rf70_patches.py:tiny --workdir=/tmp/rf70_patches_tiny
Data:  --config.data.data_dir=DIR (default ../shared/data/maps). The seed cut 4 tiles per half
       (patch_layout='grid'); --config.data.patch_layout=cover uses the whole image.
"""

import ml_collections

from configs import base


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """The seed's training 9."""
  config = base.get_config()
  config.num_epochs = 200
  config.data.patch_layout = "grid"
  return base.finish(config, arg)
