"""Data: the pix2pix folder format, transforms, Grain pipelines, synthetic maps, TFDS, download."""

from p2p.data.errors import DataError
from p2p.data.folder import DIRECTIONS, FolderSource, list_images, load_pair, scan_split, split_pair

__all__ = ["DIRECTIONS", "DataError", "FolderSource", "list_images", "load_pair", "scan_split",
           "split_pair"]
