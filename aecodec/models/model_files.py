"""Model files: safetensors only (no pickle), identified by name and the SHA-256 of the file.

A model file holds the synthesis/analysis network in fp16, the exact integer prior, and JSON
metadata (name, network config). Shipped models are listed in ``weights/manifest.json``, which
:func:`aecodec.training.export.record_in_manifest` writes.
"""

import hashlib
import json
from dataclasses import dataclass, fields
from functools import lru_cache
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load, save

from aecodec.errors import ModelError
from aecodec.models.integer_prior import IntegerPrior
from aecodec.models.vqvae2 import VQVAE2, VQVAE2Config

WEIGHTS_DIR = Path(__file__).parent / "weights"
MANIFEST = WEIGHTS_DIR / "manifest.json"
MODEL_FORMAT = "aecodec-vqvae2-1"
MAX_NAME_LENGTH = 16
# Training-only state that a codec does not need.
_TRAINING_BUFFERS = ("ema_count", "ema_sum", "initialized")


@dataclass(frozen=True)
class CodecModel:
    """A loaded model: float network for analysis/synthesis, integer prior for the coder."""

    name: str
    digest: bytes  # first 8 bytes of the file's SHA-256, written into every .aec header
    network: VQVAE2
    prior: IntegerPrior

    @property
    def num_qualities(self) -> int:
        return self.network.num_qualities


def model_bytes(name: str, network: VQVAE2, prior: IntegerPrior, metadata: dict[str, str] | None = None) -> bytes:
    """Serialize a model to safetensors bytes (fp16 network, integer prior)."""
    if (
        not 1 <= len(name) <= MAX_NAME_LENGTH
        or not all(c.isalnum() or c in "._-" for c in name)
        or name != name.lower()
    ):
        raise ValueError(f"model name must be 1..{MAX_NAME_LENGTH} chars of [a-z0-9._-], got {name!r}")
    tensors = {
        f"net.{k}": v.detach().to(torch.float16).contiguous()
        for k, v in network.state_dict().items()
        if not k.endswith(_TRAINING_BUFFERS)
    }
    tensors.update({k: v.contiguous() for k, v in prior.tensors().items()})
    meta = {"format": MODEL_FORMAT, "name": name, "config": json.dumps(network.config.to_dict()), **(metadata or {})}
    return save(tensors, metadata=meta)


def _config(meta: dict[str, str]) -> VQVAE2Config:
    """The network config of a model file: sizes in 1..4096 and a known upsampler (files older than
    the ``upsample`` field used transposed convolutions)."""
    raw = json.loads(meta["config"])
    if not isinstance(raw, dict):
        raise ModelError("model config is malformed")
    raw.setdefault("upsample", "transposed")
    sizes = {f.name for f in fields(VQVAE2Config) if f.type is int}
    if set(raw) != {f.name for f in fields(VQVAE2Config)} or not all(
        isinstance(raw[k], int) and 0 < raw[k] <= 4096 for k in sizes
    ):
        raise ModelError("model config is malformed")
    try:
        return VQVAE2Config(**raw)
    except ValueError:  # an unknown upsampler
        raise ModelError("model config is malformed") from None


def model_from_bytes(data: bytes, source: str = "model") -> CodecModel:
    """Load a model from safetensors bytes; wrong format, keys or shapes raise :class:`ModelError`."""
    try:
        tensors = load(data)
        meta = _metadata(data)
        if meta.get("format") != MODEL_FORMAT:
            raise ModelError(f"{source}: not an aecodec model file")
        config = _config(meta)
        network = VQVAE2(config)
        state = {k[4:]: v.float() for k, v in tensors.items() if k.startswith("net.")}
        missing, unexpected = network.load_state_dict(state, strict=False)
        missing = [k for k in missing if not k.endswith(_TRAINING_BUFFERS)]
        if missing or unexpected:
            raise ModelError(
                f"{source}: weights do not match the model config "
                f"({len(missing)} missing, {len(unexpected)} unexpected)"
            )
        prior = IntegerPrior.from_tensors(tensors, config.top_stages, config.bottom_stages, config.num_codes)
    except ModelError:
        raise
    except (SafetensorError, KeyError, RuntimeError, ValueError, TypeError, json.JSONDecodeError) as exc:
        raise ModelError(
            f"{source}: invalid model file ({exc.__class__.__name__}: {str(exc).splitlines()[0][:200]})"
        ) from None
    network.eval()
    return CodecModel(meta["name"], hashlib.sha256(data).digest()[:8], network, prior)


def _metadata(data: bytes) -> dict[str, str]:
    """The ``__metadata__`` of a safetensors blob (its JSON header)."""
    if len(data) < 8:
        raise ModelError("model file is truncated")
    size = int.from_bytes(data[:8], "little")
    if size > len(data) - 8:
        raise ModelError("model file is truncated")
    return json.loads(data[8 : 8 + size]).get("__metadata__", {})


def load_model_file(path: str | Path) -> CodecModel:
    """Load a model from a ``.safetensors`` path given by a user."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ModelError(f"cannot read model {path}: {exc.strerror}") from None
    return model_from_bytes(data, str(path))


def manifest() -> dict:
    """The shipped-model manifest: default model name and, per model, file name, hash and results."""
    try:
        return json.loads(MANIFEST.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelError(f"no shipped models: {MANIFEST} is unreadable ({exc.__class__.__name__})") from None


@lru_cache(maxsize=8)
def shipped_model(name: str) -> CodecModel:
    """A model that ships inside the package, by name."""
    entries = manifest()["models"]
    if name not in entries:
        raise ModelError(f"unknown model {name!r}; shipped models: {', '.join(sorted(entries))}")
    model = load_model_file(WEIGHTS_DIR / entries[name]["file"])
    if model.digest.hex() != entries[name]["hash"]:
        raise ModelError(f"shipped model {name!r} does not match its manifest hash")
    return model


def default_model_name() -> str:
    return manifest()["default"]


def resolve_model(name_or_path: str | None) -> CodecModel:
    """A shipped model by name, a model file by path (``*.safetensors``), or the default model."""
    if name_or_path is None:
        return shipped_model(default_model_name())
    if name_or_path.endswith(".safetensors") or "/" in name_or_path:
        return load_model_file(name_or_path)
    return shipped_model(name_or_path)
