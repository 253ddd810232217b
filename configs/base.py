"""Every config field, with its meaning and units; experiments import this and override a few.

Run: python -m p2p.data.preview --config=configs/base.py --out=runs/preview.png
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
  """The pix2pix paper defaults on the maps dataset, map -> satellite."""
  config = ml_collections.ConfigDict()
  config.seed = 0                        # PRNG seed for init, dropout, shuffling and jitter
  config.batch_size = 1                  # global batch, images per step over all devices

  config.data = data = ml_collections.ConfigDict()
  data.data_dir = "../shared/data/maps"  # folder with train/ and val/ side-by-side pairs
  data.source = "folder"                 # folder (default) | tfds (prepared pix2pix_maps)
  data.tfds_data_dir = ""                # tfds data_dir of pix2pix_maps, for source=tfds
  data.direction = "map_to_satellite"    # map_to_satellite (input = right half) | satellite_to_map
  data.preprocess = "patches"            # patches (native-scale tiles) | resize (whole half)
  data.patch_size = 256                  # pixels, side of a native-scale tile
  data.patch_layout = "cover"            # cover (tiles reach every pixel) | grid (seed: 4 tiles)
  data.patch_stride = 0                  # pixels between cover tiles; 0 = fewest evenly spaced
  data.image_size = 256                  # pixels, model input side
  data.load_size = 286                   # pixels, resize before the random crop (jitter)
  data.jitter = True                     # train: resize to load_size + aligned random crop
  data.flip = True                       # train: horizontal flip of both with p = 0.5
  data.skip_bad_files = False            # skip (and log) undecodable/misshapen files, or fail
  data.verify_images = True              # decode every file at start-up (~3 ms per 1200x600)
  data.worker_count = 0                  # grain worker processes; 0 = threads in this process
  data.worker_buffer_size = 2            # batches each worker process keeps ready
  data.num_threads = 2                   # reader threads (per process)
  data.prefetch_buffer_size = 8          # batches prefetched by the reader threads
  return config
