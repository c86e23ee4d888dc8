"""Rate-distortion benchmark of aecodec against classic codecs (`aecodec bench`); see cli.py."""
