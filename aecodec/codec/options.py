"""The codec's user-facing settings and their defaults, free of torch so the CLI can build its parser fast."""

from importlib.metadata import PackageNotFoundError, version

try:
    VERSION = version("aecodec")  # aecodec.__version__ and `aecodec --version`
except PackageNotFoundError:  # a source tree that was never installed
    VERSION = "0+unknown"

# The default quality of a model without a residual layer; a model with one names its own (Codec.default_quality).
DEFAULT_QUALITY = 3
# Encoder effort (cjxl's habit): 1 is the fastest; aecodec.codec.effort lists them all.
DEFAULT_EFFORT = 2
DEFAULT_TILE_SIZE = 1024
DEFAULT_OVERLAP = 16
# What the encoder aims at (:mod:`aecodec.codec.refine`): the network's own analysis, or a latent tuned for MS-SSIM.
TUNES = ("psnr", "ms-ssim")
DEFAULT_TUNE = "psnr"
# pytorch_msssim's five scales of an 11-px window need the smaller side above (11 - 1) * 2**4 = 160.
MS_SSIM_MIN_SIDE = 161
