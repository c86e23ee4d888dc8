"""The exceptions aecodec raises for bad input, so callers can catch exactly these."""


class AecError(Exception):
    """Base class of every error aecodec reports to a user as a one-line message."""


class FormatError(AecError, ValueError):
    """A .aec stream is malformed: truncated, corrupted, foreign, forged or for an unknown model."""


class InputError(AecError, ValueError):
    """An input image or argument cannot be coded (not an image, too large, unsupported mode)."""


class ModelError(AecError, ValueError):
    """A model file is missing, unsafe or does not match its declared shapes or hash."""
