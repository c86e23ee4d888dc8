"""Research prototype (issue 19): a Cool-chic-like per-image enhancement layer over the VQ-VAE-2 base.

Not part of the aecodec package and not used by the codec; see README.md in this folder.
"""
