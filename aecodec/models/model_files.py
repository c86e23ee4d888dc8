"""Model files: safetensors only (no pickle), identified by name and the SHA-256 of the file.

A model file holds the synthesis/analysis network in fp16, the exact integer prior, optionally a
residual layer (:mod:`aecodec.models.residual`, tensors ``res.*``) and a post-filter
(:mod:`aecodec.models.postfilter`, tensors ``post.*``), and JSON metadata (name, network config, and
``prior_order``, the prior's pass order, where it is not the checkerboard).
Shipped models are listed in ``weights/manifest.json``, which
:func:`aecodec.training.export.record_in_manifest` writes.
"""

import hashlib
import json
from dataclasses import dataclass, fields
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load, save

from aecodec.bitstream.entropy import MAX_ROW_TOTAL, PRECISION_BITS
from aecodec.bitstream.format import MAX_FILTER_BLOCKS, MAX_FILTER_CHANNELS, MODEL_NAME_RE
from aecodec.errors import InputError, ModelError
from aecodec.models.integer_prior import IntegerPrior
from aecodec.models.manifest import WEIGHTS_DIR, default_model_name, manifest
from aecodec.models.postfilter import PostFilter
from aecodec.models.prior import CHECKERBOARD
from aecodec.models.residual import (
    ALPHABET,
    COEFFICIENTS,
    DEPTHS,
    PREDICTOR_INPUTS,
    ResidualLayer,
    ResidualLevel,
    context_count,
)
from aecodec.models.vqvae2 import VQVAE2, VQVAE2Config

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
RESIDUAL_LIMITS = {"bases": 16, "bank_rows": 256, "levels": 64}
PREDICTOR_LIMIT = 1024.0  # fitted ones stay below 20: a bound that keeps every decoded value finite
POSTFILTER_MAX_GAIN = 4.0
# Base quality of a half-resolution base (docs/FORMAT.md, flags) in model files whose levels do not name
# their own (``res.levels`` of 3 columns), and the fitter's default: the best of 1-6 on Kodak and held-out
# photos at qualities 2-16 of vqvae2-wide-rpf (research/residual/README.md, half-resolution base).
HALF_BASE_QUALITY = 3
# Training-only state that a codec does not need.
_TRAINING_BUFFERS = ("ema_count", "ema_sum", "initialized")


@dataclass(frozen=True)
class CodecModel:
    """A loaded model: float network for analysis/synthesis, integer prior for the coder."""

    name: str
    digest: bytes  # first 8 bytes of the file's SHA-256, written into every .aec header
    network: VQVAE2
    prior: IntegerPrior
    residual: ResidualLayer | None = None
    postfilter: PostFilter | None = None

    @property
    def num_qualities(self) -> int:
        """Qualities offered (:func:`qualities_offered`)."""
        return qualities_offered(self.network.num_qualities, self.residual)

    def quality_plan(self, quality: int, half_base: bool = False) -> tuple[int, ResidualLevel | None]:
        """(base quality, residual level or None) that ``quality`` codes; InputError outside 1..num_qualities.

        A half-resolution base (``half_base``, only below a residual level) codes at the level's half-base quality.
        """
        if quality not in range(1, self.num_qualities + 1):
            raise InputError(f"quality must be in 1..{self.num_qualities}, got {quality}")
        if self.residual is None or quality <= self.residual.base_only:
            if half_base:
                raise InputError(f"quality {quality} codes no residual layer, so no half-resolution base")
            return quality, None
        level = self.residual.levels[quality - self.residual.base_only - 1]
        return level.half_base_quality if half_base else level.base_quality, level

    @property
    def half_base_quality(self) -> int:
        """The half-base quality of levels that name none: :data:`HALF_BASE_QUALITY`, or the network's highest."""
        return min(HALF_BASE_QUALITY, self.network.num_qualities)

    @property
    def default_quality(self) -> int | None:
        """The quality a model with a residual layer codes at by default (None: the codec's default)."""
        return None if self.residual is None else self.residual.default_quality


def qualities_offered(base_qualities: int, residual: ResidualLayer | None) -> int:
    """A model's quality count: its base's, or with a residual layer its base-only ones and then its levels."""
    return base_qualities if residual is None else residual.base_only + len(residual.levels)


def residual_tensors(layer: ResidualLayer) -> dict[str, torch.Tensor]:
    """The ``res.*`` tensors a model file stores for a residual layer."""
    levels = [[v.base_quality, v.basis, v.step16, v.half_base_quality] for v in layer.levels]
    tensors = {
        "res.means": torch.from_numpy(np.ascontiguousarray(layer.means, dtype=np.float32)),
        "res.bases": torch.from_numpy(np.ascontiguousarray(layer.bases, dtype=np.float32)),
        "res.bank": torch.from_numpy(np.ascontiguousarray(layer.bank, dtype=np.int32)),
        "res.levels": torch.tensor(levels, dtype=torch.int32),
        "res.rows": torch.from_numpy(np.stack([v.rows for v in layer.levels]).astype(np.uint8)),
        "res.qualities": torch.tensor([layer.base_only, layer.default_quality], dtype=torch.int32),
        "res.offset": torch.tensor([layer.reconstruction_offset], dtype=torch.float32),
    }
    if layer.predictors is not None:
        tensors["res.predictors"] = torch.from_numpy(np.ascontiguousarray(layer.predictors, dtype=np.float32))
    return tensors


def _residual_layer(tensors: dict[str, torch.Tensor], base_qualities: int) -> ResidualLayer | None:
    """The residual layer of a model file's tensors (None without ``res.*``), every value range checked."""
    stored = {k[4:]: v for k, v in tensors.items() if k.startswith("res.")}
    if not stored:
        return None
    expected = {"means", "bases", "bank", "levels", "rows", "qualities", "offset"}
    if set(stored) - {"predictors"} != expected:
        raise ModelError(
            f"residual layer tensors must be res.{{{','.join(sorted(expected))}}} and optionally res.predictors"
        )
    predictors = stored.get("predictors")
    means, bases, bank = stored["means"], stored["bases"], stored["bank"]
    levels, rows, qualities, offset = stored["levels"], stored["rows"], stored["qualities"], stored["offset"]
    count, rows_count, level_count = len(means), len(bank), len(levels)
    shapes_ok = (
        1 <= count <= RESIDUAL_LIMITS["bases"]
        and tuple(means.shape) == (count, COEFFICIENTS)
        and tuple(bases.shape) == (count, COEFFICIENTS, COEFFICIENTS)
        and 1 <= rows_count <= RESIDUAL_LIMITS["bank_rows"]
        and tuple(bank.shape) == (rows_count, ALPHABET)
        and 1 <= level_count <= RESIDUAL_LIMITS["levels"]
        and tuple(levels.shape) in {(level_count, 3), (level_count, 4)}
        and rows.dim() == 2
        and rows.shape[0] == level_count
        and rows.shape[1] in {context_count(depth) for depth in DEPTHS}
        and tuple(qualities.shape) == (2,)
        and tuple(offset.shape) == (1,)
        and (predictors is None or tuple(predictors.shape) == (count, PREDICTOR_INPUTS, COEFFICIENTS))
    )
    if not shapes_ok:
        raise ModelError("residual layer tensors have the wrong shapes")
    transforms = [means, bases, offset] + ([] if predictors is None else [predictors])
    if any(t.dtype != torch.float32 for t in transforms):
        raise ModelError("residual layer transforms must be float32")
    if any(t.dtype != torch.int32 for t in (bank, levels, qualities)) or rows.dtype != torch.uint8:
        raise ModelError("residual layer tables have the wrong integer types")
    bank_np, levels_np = bank.numpy().astype(np.int64), levels.numpy().astype(np.int64)
    if not (all(torch.isfinite(t).all() for t in transforms) and 0 <= float(offset[0]) <= 0.5):
        raise ModelError("residual layer transforms must be finite, the offset in 0..0.5")
    if predictors is not None and float(predictors.abs().max()) > PREDICTOR_LIMIT:
        raise ModelError(f"residual layer predictors must be within +-{PREDICTOR_LIMIT}")
    if bank_np.min() < 1 or bank_np.sum(1).max() > MAX_ROW_TOTAL:
        raise ModelError(f"residual bank rows must be >= 1 and sum to at most 2**{PRECISION_BITS}")
    base_only, default_quality = (int(v) for v in qualities)
    if int(rows.max()) >= rows_count or not 0 <= base_only <= base_qualities:
        raise ModelError("residual layer rows or base-only count out of range")
    if not 1 <= default_quality <= base_only + level_count:
        raise ModelError("residual layer default quality out of range")
    if levels_np.shape[1] == 3:  # written before levels named their half-base quality
        levels_np = np.column_stack([levels_np, np.full(level_count, min(HALF_BASE_QUALITY, base_qualities))])
    base_ok = (levels_np[:, [0, 3]] >= 1) & (levels_np[:, [0, 3]] <= base_qualities)
    if not (base_ok.all() and (levels_np[:, 1] < count).all() and (levels_np[:, 1] >= 0).all()):
        raise ModelError("residual levels name a base quality or a transform the model lacks")
    if not ((levels_np[:, 2] >= 1) & (levels_np[:, 2] <= 0xFFFF)).all():
        raise ModelError("residual level steps must be in 1..65535 sixteenths")
    return ResidualLayer(
        means.numpy(),
        bases.numpy(),
        bank_np,
        tuple(
            ResidualLevel(int(q), int(b), int(s), r.astype(np.int64), int(h))
            for (q, b, s, h), r in zip(levels_np, rows.numpy())
        ),
        float(offset[0]),
        base_only,
        default_quality,
        None if predictors is None else predictors.numpy(),
    )


def _postfilter(tensors: dict[str, torch.Tensor], qualities: int) -> PostFilter | None:
    """The post-filter of a model file's tensors (None without ``post.*``): shapes, dtypes and values checked."""
    stored = {k[5:]: v for k, v in tensors.items() if k.startswith("post.")}
    if not stored:
        return None
    first = stored.get("first.weight")
    channels = first.shape[0] if first is not None and first.dim() == 4 else 0
    if not 1 <= channels <= MAX_FILTER_CHANNELS:
        raise ModelError(f"post-filter must have 1..{MAX_FILTER_CHANNELS} channels")
    blocks = sum(1 for k in stored if k.startswith("blocks.") and k.endswith(".inner.weight"))
    if blocks > MAX_FILTER_BLOCKS:
        raise ModelError(f"post-filter must have at most {MAX_FILTER_BLOCKS} residual blocks")
    with torch.device("meta"):
        expected = {k: tuple(v.shape) for k, v in PostFilter(qualities, channels, blocks).state_dict().items()}
    if {k: tuple(v.shape) for k, v in stored.items()} != expected:
        raise ModelError(
            f"post-filter tensors do not match {qualities} qualities, {channels} channels and {blocks} blocks"
        )
    if any(v.dtype != torch.float32 or not torch.isfinite(v).all() for v in stored.values()):
        raise ModelError("post-filter tensors must be finite float32")
    if not ((stored["gain"] >= 0) & (stored["gain"] <= POSTFILTER_MAX_GAIN)).all():
        raise ModelError(f"post-filter gains must be in 0..{POSTFILTER_MAX_GAIN}")
    postfilter = PostFilter(qualities, channels, blocks)
    postfilter.load_state_dict(stored)
    return postfilter.eval().requires_grad_(False)  # an encoder tuning it per image never trains the shared weights


def model_bytes(
    name: str,
    network: VQVAE2,
    prior: IntegerPrior,
    residual: ResidualLayer | None = None,
    metadata: dict[str, str] | None = None,
    postfilter: PostFilter | None = None,
) -> bytes:
    """Serialize a model to safetensors bytes (fp16 network, integer prior, float32/integer residual layer,
    float32 post-filter)."""
    check_model_name(name, ValueError)
    tensors = {
        f"net.{k}": v.detach().to(torch.float16).contiguous()
        for k, v in network.state_dict().items()
        if not k.endswith(_TRAINING_BUFFERS)
    }
    tensors.update({k: v.contiguous() for k, v in prior.tensors().items()})
    if residual is not None:
        tensors.update(residual_tensors(residual))
    if postfilter is not None:
        tensors.update({f"post.{k}": v.detach().float().contiguous() for k, v in postfilter.state_dict().items()})
    meta = {"format": MODEL_FORMAT, "name": name, "config": json.dumps(network.config.to_dict()), **(metadata or {})}
    if prior.order != CHECKERBOARD:  # files older than the pass orders are all checkerboard
        meta["prior_order"] = prior.order
    return save(tensors, metadata=meta)


def check_model_name(name: object, error: type[Exception] = InputError) -> None:
    """Raise ``error`` unless ``name`` can be written into an .aec header (and used as a file stem): trainers
    check their --name before they work, not when they save."""
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
        check_model_name(meta.get("name"), ModelError)
        config = _config(meta)
        tensors = load(data)
        _check_weights(config, tensors)
        order = meta.get("prior_order", CHECKERBOARD)
        prior = IntegerPrior.from_tensors(tensors, config.top_stages, config.bottom_stages, config.num_codes, order)
        residual = _residual_layer(tensors, config.bottom_stages)
        postfilter = _postfilter(tensors, qualities_offered(config.bottom_stages, residual))
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
    return CodecModel(meta["name"], hashlib.sha256(data).digest()[:8], network, prior, residual, postfilter)


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


def resolve_model(name_or_path: str | None) -> CodecModel:
    """A shipped model by name, a model file by path (``*.safetensors``), or the default model."""
    if name_or_path is None:
        return shipped_model(default_model_name())
    if name_or_path.endswith(".safetensors") or "/" in name_or_path:
        return load_model_file(name_or_path)
    return shipped_model(name_or_path)
