"""A Pillow plugin for ``.aec``: after ``import aecodec``, ``Image.open("x.aec")`` and ``img.save("y.aec")`` work.

Opening parses the container only (size, mode, metadata); the networks run when the pixels are first
needed (``load()``), as Pillow does for its own formats. Saving takes ``quality`` (1..8 for the default
model), ``target_bytes``, ``effort``, ``tune`` and ``strip`` as :func:`aecodec.compress` does.
"""

from typing import IO

from PIL import Image, ImageFile

from aecodec.bitstream.format import ALPHA, MAGIC, unpack
from aecodec.codec.images import read_binary, with_metadata
from aecodec.codec.options import DEFAULT_EFFORT, DEFAULT_TUNE

FORMAT = "AEC"


def _accept(prefix: bytes) -> bool:
    """Pillow's identity check: the container's magic bytes."""
    return prefix[:4] == MAGIC


class AecImageFile(ImageFile.ImageFile):
    """An ``.aec`` file opened by Pillow; decoded on first access to its pixels."""

    format = FORMAT
    format_description = "aecodec learned image codec"

    def _open(self) -> None:
        self._aec = read_binary(self.fp, "an .aec file")
        file = unpack(self._aec)
        self._size = (file.header.width, file.header.height)
        self._mode = ("L" if file.header.channels == 1 else "RGB") + ("A" if file.chunk(ALPHA) else "")
        with_metadata(self, dict(file.chunks))
        self.tile = []

    def load(self) -> object:
        """Decode the file (once) with the model it names."""
        if self._aec is not None:
            from aecodec.codec.api import decompress  # torch loads only when pixels are needed

            self.im = decompress(self._aec).im
            self._aec = None
        return super().load()


def _save(image: Image.Image, fp: IO[bytes], filename: str | bytes) -> None:
    """Pillow's writer: ``image.save(path_or_file, "AEC", quality=..., effort=...)``."""
    from aecodec.codec.api import compress

    options = image.encoderinfo
    fp.write(
        compress(
            image,
            options.get("quality"),
            tune=options.get("tune", DEFAULT_TUNE),
            target_bytes=options.get("target_bytes"),
            strip=options.get("strip", False),
            effort=options.get("effort", DEFAULT_EFFORT),
        )
    )


Image.register_open(FORMAT, AecImageFile, _accept)
Image.register_save(FORMAT, _save)
Image.register_extension(FORMAT, ".aec")
Image.register_mime(FORMAT, "image/x-aec")
