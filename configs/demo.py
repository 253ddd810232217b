"""The embedded default: synthetic maps, small and fast on a laptop CPU.

Run: make demo   (writes data/synthetic, then runs on it)
"""

import ml_collections

from configs import base


def get_config() -> ml_collections.ConfigDict:
  """Synthetic maps (python -m p2p.data.synthetic --out data/synthetic), 128 px model input."""
  config = base.get_config()
  config.data.data_dir = "data/synthetic"
  config.data.preprocess = "resize"
  config.data.image_size = 128
  config.data.load_size = 143
  return config
