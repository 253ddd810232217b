"""p2p: pix2pix image-to-image translation in JAX/Flax.

    import p2p
    gen = p2p.load("runs/rf70")          # a run folder's newest generator
    photos = p2p.sample(gen, maps)       # NHWC uint8 or float [-1, 1], any batch size
    photo = p2p.translate_image(gen, big_map)  # one H x W x 3 uint8 map of any size, tiled
"""

from p2p.infer import Generator, load, sample, translate_image

__version__ = "0.2.0"
__all__ = ["Generator", "load", "sample", "translate_image"]
