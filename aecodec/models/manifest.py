"""The shipped models' manifest (weights/manifest.json): names, files, hashes, results. No torch, so `aecodec info`
can name a file's model without loading one."""

import json
from pathlib import Path

from aecodec.errors import ModelError

WEIGHTS_DIR = Path(__file__).parent / "weights"
MANIFEST = WEIGHTS_DIR / "manifest.json"


def manifest() -> dict:
    """The shipped-model manifest: default model name and, per model, file name, hash and results."""
    try:
        return json.loads(MANIFEST.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelError(f"no shipped models: {MANIFEST} is unreadable ({exc.__class__.__name__})") from None


def shipped_model_name(digest: bytes) -> str | None:
    """The name of the shipped model whose weights hash to ``digest`` (8 bytes), or None."""
    return next((name for name, entry in manifest()["models"].items() if entry["hash"] == digest.hex()), None)


def default_model_name() -> str:
    return manifest()["default"]
