"""The probes' image size: a 768x512 centre crop, what most scratch measurements of the research notes use."""

from PIL import Image


def load(path: str) -> Image.Image:
    """The RGB image at ``path``, cut to its 768x512 centre where larger."""
    img = Image.open(path).convert("RGB")
    if img.width * img.height > 768 * 512:
        left, top = (img.width - 768) // 2, (img.height - 512) // 2
        img = img.crop((left, top, left + 768, top + 512))
    return img
