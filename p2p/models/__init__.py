"""pix2pix networks: the U-Net generator and PatchGAN discriminators."""

from p2p.models.discriminator import (MultiScaleDiscriminator, PatchDiscriminator, coarsest_size,
                                      min_input_size, patch_output_size)
from p2p.models.generator import UNetGenerator, resolve_num_downs
from p2p.models.layers import PhaseConvTranspose, conv_transpose, phase_conv_transpose

__all__ = [
    "MultiScaleDiscriminator",
    "PatchDiscriminator",
    "PhaseConvTranspose",
    "UNetGenerator",
    "coarsest_size",
    "conv_transpose",
    "min_input_size",
    "patch_output_size",
    "phase_conv_transpose",
    "resolve_num_downs",
]
