"""p2p: pix2pix image-to-image translation in JAX/Flax.

    import p2p
    gen = p2p.load("runs/rf70")          # a run folder's newest generator
    photos = p2p.sample(gen, maps)       # NHWC integers (uint8, uint16) or float [-1, 1]
    photo = p2p.translate_image(gen, big_map)  # one H x W x C image of any size, tiled
"""

from p2p.infer import Generator, load, sample, translate_image

__version__ = "0.3.0"
__all__ = ["Generator", "load", "sample", "translate_image"]
