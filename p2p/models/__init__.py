"""pix2pix networks: the U-Net generator and PatchGAN discriminators."""

from p2p.models.discriminator import PatchDiscriminator, min_input_size, patch_output_size
from p2p.models.generator import UNetGenerator, resolve_num_downs
from p2p.models.layers import PhaseConvTranspose, conv_transpose, phase_conv_transpose

__all__ = [
    "PatchDiscriminator",
    "PhaseConvTranspose",
    "UNetGenerator",
    "conv_transpose",
    "min_input_size",
    "patch_output_size",
    "phase_conv_transpose",
    "resolve_num_downs",
]
