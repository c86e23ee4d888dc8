"""Published RD curves (e.g. shared/anchors/kodak_published.json), loaded as curves marked published."""

from __future__ import annotations

import json
from pathlib import Path

from aecodec.bench.curves import RDCurve
from aecodec.errors import InputError


def load_anchors(path: str | Path) -> list[RDCurve]:
    """Read `{codec: {"bpp": [...], "psnr": [...], "ms-ssim"?: [...], ...}}` into published curves."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"cannot read anchors file {path}: {exc}") from exc
    try:
        return [
            RDCurve(name, list(entry["bpp"]), list(entry["psnr"]), entry.get("ms-ssim"), published=True)
            for name, entry in data.items()
        ]
    except (AttributeError, KeyError, TypeError) as exc:
        raise InputError(f"anchors file {path} is not a {{codec: {{bpp, psnr, ...}}}} mapping: {exc}") from exc
