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

from aecodec.bitstream.format import MODEL_NAME_RE
from aecodec.errors import ModelError
from aecodec.models.integer_prior import IntegerPrior
from aecodec.models.vqvae2 import VQVAE2, VQVAE2Config

WEIGHTS_DIR = Path(__file__).parent / "weights"
MANIFEST = WEIGHTS_DIR / "manifest.json"
MODEL_FORMAT = "aecodec-vqvae2-1"
MAX_MODEL_BYTES = 128 << 20  # 50x the shipped models: a model file is read with this limit
# Upper bounds of the network config (the shipped models: 96, 32, 256, 2, 10, 2): they bound the
# network built for a file, its per-pixel cost and the prior's frequency tables, before any weight is read.
CONFIG_LIMITS = {
    "channels": 512,
    "latent_dim": 256,
    "num_codes": 1024,
    "top_stages": 8,
    "bottom_stages": 32,
    "res_blocks": 8,
}
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
    _check_name(name, ValueError)
    tensors = {
        f"net.{k}": v.detach().to(torch.float16).contiguous()
        for k, v in network.state_dict().items()
        if not k.endswith(_TRAINING_BUFFERS)
    }
    tensors.update({k: v.contiguous() for k, v in prior.tensors().items()})
    meta = {"format": MODEL_FORMAT, "name": name, "config": json.dumps(network.config.to_dict()), **(metadata or {})}
    return save(tensors, metadata=meta)


def _check_name(name: object, error: type[Exception]) -> None:
    """Raise ``error`` unless ``name`` can be written into an .aec header (and used as a file stem)."""
    if not isinstance(name, str) or not MODEL_NAME_RE.fullmatch(name.encode("ascii", "replace")):
        raise error(f"model name must be 1..16 characters of [a-z0-9._-] starting with a letter or digit, got {name!r}")


def _config(meta: dict[str, str]) -> VQVAE2Config:
    """The network config of a model file: every size in 1..CONFIG_LIMITS, channels even, a known upsampler
    (files older than the ``upsample`` field used transposed convolutions)."""
    raw = json.loads(meta.get("config", "null"))
    if not isinstance(raw, dict):
        raise ModelError("model config is missing or malformed")
    raw.setdefault("upsample", "transposed")
    if set(raw) != {f.name for f in fields(VQVAE2Config)}:
        raise ModelError("model config is malformed")
    for key, limit in CONFIG_LIMITS.items():
        if type(raw[key]) is not int or not 1 <= raw[key] <= limit:
            raise ModelError(f"model config: {key} must be an integer in 1..{limit}, got {raw[key]!r}")
    if raw["channels"] % 2 or raw["num_codes"] < 2:
        raise ModelError("model config: channels must be even and num_codes at least 2")
    try:
        return VQVAE2Config(**raw)
    except (TypeError, ValueError):  # an unknown upsampler
        raise ModelError("model config is malformed") from None


def _check_weights(config: VQVAE2Config, tensors: dict[str, torch.Tensor]) -> None:
    """Compare the file's network weights with the config's, on the meta device: nothing is allocated."""
    with torch.device("meta"):
        expected = {
            f"net.{k}": tuple(v.shape)
            for k, v in VQVAE2(config).state_dict().items()
            if not k.endswith(_TRAINING_BUFFERS)
        }
    stored = {k: tuple(v.shape) for k, v in tensors.items() if k.startswith("net.")}
    if stored != expected or not all(tensors[k].is_floating_point() for k in stored):
        wrong = sorted(k for k in expected.keys() | stored.keys() if expected.get(k) != stored.get(k))
        raise ModelError(f"weights do not match the model config ({len(wrong)} tensors differ, e.g. {wrong[:1]})")


def model_from_bytes(data: bytes, source: str = "model") -> CodecModel:
    """Load a model from safetensors bytes; wrong format, name, config, keys or shapes raise :class:`ModelError`.

    Everything is checked against the file before the network is built, so a file cannot make it allocate
    more than its own weights justify.
    """
    try:
        if len(data) > MAX_MODEL_BYTES:
            raise ModelError(f"model file is larger than {MAX_MODEL_BYTES} bytes")
        meta = _metadata(data)
        if meta.get("format") != MODEL_FORMAT:
            raise ModelError("not an aecodec model file")
        _check_name(meta.get("name"), ModelError)
        config = _config(meta)
        tensors = load(data)
        _check_weights(config, tensors)
        prior = IntegerPrior.from_tensors(tensors, config.top_stages, config.bottom_stages, config.num_codes)
        network = VQVAE2(config)
        network.load_state_dict({k[4:]: v.float() for k, v in tensors.items() if k.startswith("net.")}, strict=False)
    except ModelError as exc:
        raise ModelError(f"{source}: {exc}") from None
    except (
        SafetensorError,
        KeyError,
        RuntimeError,
        ValueError,
        TypeError,
        AttributeError,
        json.JSONDecodeError,
    ) as exc:
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
    header = json.loads(data[8 : 8 + size])
    meta = header.get("__metadata__") if isinstance(header, dict) else None
    if not isinstance(meta, dict):
        raise ModelError("model file has no metadata")
    return meta


def load_model_file(path: str | Path) -> CodecModel:
    """Load a model from a ``.safetensors`` path given by a user."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_MODEL_BYTES + 1)
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
