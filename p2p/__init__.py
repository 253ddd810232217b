"""p2p: pix2pix image-to-image translation in JAX/Flax."""

__version__ = "0.1.0"
