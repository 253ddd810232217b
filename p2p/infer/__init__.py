"""Inference: load a run's generator, sample batches, translate images of any size."""

from p2p.infer.load import load
from p2p.infer.sample import Generator, sample, translate_image

__all__ = ["Generator", "load", "sample", "translate_image"]
