"""The seed's training 8: training 9 with the 286x286 PatchGAN.

Run:   python -m p2p.main --config=configs/rf286_patches.py --workdir=runs/rf286_patches
Smoke: python -m p2p.main --config=configs/rf286_patches.py:tiny --workdir=/tmp/rf286_patches_tiny
Data:  --config.data.data_dir=DIR (default ../shared/data/maps). The seed cut 4 tiles per half
       (patch_layout='grid'); --config.data.patch_layout=cover uses the whole image.
"""

import ml_collections

from configs import base


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """The seed's training 8."""
  config = base.get_config()
  config.num_epochs = 200
  config.model.receptive_field = 286
  config.data.patch_layout = "grid"
  return base.finish(config, arg)
