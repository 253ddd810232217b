"""pix2pix networks: the U-Net generator and PatchGAN discriminators (architecture only)."""

from p2p.models.discriminator import (RECEPTIVE_FIELDS, MultiScaleDiscriminator,
                                      PatchDiscriminator, coarsest_size, min_input_size,
                                      patch_output_size)
from p2p.models.generator import UNetGenerator, resolve_num_downs
from p2p.models.layers import NORMS, UPSAMPLES

__all__ = [
    "NORMS",
    "RECEPTIVE_FIELDS",
    "UPSAMPLES",
    "MultiScaleDiscriminator",
    "PatchDiscriminator",
    "UNetGenerator",
    "coarsest_size",
    "min_input_size",
    "patch_output_size",
    "resolve_num_downs",
]
