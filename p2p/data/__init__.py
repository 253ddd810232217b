"""Data: layouts of paired images, any channels and bit depth, transforms, Grain pipelines,
synthetic maps, TFDS, download, inspection."""

from p2p.data.errors import DataError
from p2p.data.folder import (DIRECTIONS, FolderSource, input_side, load_pair, orient, scan_split,
                             split_pair)
from p2p.data.io import read_image, write_image

__all__ = ["DIRECTIONS", "DataError", "FolderSource", "input_side", "load_pair", "orient",
           "read_image", "scan_split", "split_pair", "write_image"]
