"""The seed's training 2: batch 4, 70x70 PatchGAN, patches, 200 epochs.

The discriminator has the original strides (last two convs stride 1), which the seed's
batch runs got wrong.

Run:   python -m p2p.main --config=configs/b4_patches.py --workdir=runs/b4_patches
Smoke: python -m p2p.main --config=configs/b4_patches.py:tiny --workdir=/tmp/b4_patches_tiny
Data:  --config.data.data_dir=DIR (default ../shared/data/maps). The seed cut 4 tiles per half
       (patch_layout='grid'); --config.data.patch_layout=cover uses the whole image.
"""

import ml_collections

from configs import base


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """The seed's training 2."""
  config = base.get_config()
  config.num_epochs = 200
  config.batch_size = 4
  config.data.patch_layout = "grid"
  return base.finish(config, arg)
