"""Encoder effort 5: the model's post-filter tuned to one image, carried in the file's ``FILT`` chunk.

The first per-image rung of the effort ladder (issue 19). Every bias of the shared filter gets a
per-image offset: the first layer's (its bias vector at the image's quality; one int8 per channel,
steps of 1/128) and those of the later convolutions (integers in steps of 2^-s, exponential-Golomb
coded), and the gain a per-image value (one byte, steps of 1/64). Adam on the decoded image against
the original (a fixed grid of crops of it on large images, so the work is bounded), in strips that the
caller's threads differentiate side by side; then, for each step 2^-s the encoder tries, the gain by
least squares; the chunk of least squared error plus lambda times its bits is written, and only where
it saves more than it costs.
Payload (docs/FORMAT.md): version byte 2, gain byte, an offset byte per channel, then the step's
exponent s and the code's order, and the later offsets' code (version 1: the first three parts only).
"""

import copy
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache, partial

import numpy as np
import torch
from torch import Tensor

from aecodec.bitstream.format import CHUNK_OVERHEAD, FILTER_TUNING_PREFIX_SIZE
from aecodec.bitstream.golomb import best_order, decode_signed, encode_signed
from aecodec.codec.distortion import squared_error
from aecodec.errors import FormatError
from aecodec.models.postfilter import FilterTuning, PostFilter, one_onednn_thread

BIAS_STEP = 1 / 128
GAIN_STEP = 1 / 64
LEARNING_RATE = 0.01
LAYER_LEARNING_RATE = 0.003  # the later biases move less: each feeds every pixel of the next layer
LAYER_STEP_EXPONENTS = (6, 7, 8)  # the later offsets' steps 2^-s the encoder tries; the format allows 4..10
MIN_LAYER_EXPONENT, MAX_LAYER_EXPONENT = 4, 10
MAX_LAYER_OFFSET = 127  # in steps, as for the first layer's int8
CROP = 128  # side of the crops a large image is tuned on
# Images up to this are tuned whole, larger ones on a grid of crops of as many pixels, so that a step's work is bounded.
MAX_TUNED_PIXELS = 1 << 19
# Output pixels of a piece of a view, differentiated on one thread: a strip of a whole image with its halo (a crop is
# one piece). The pieces depend on the image alone and their gradients add in order, so the tuning runs on the
# caller's threads and its file does not depend on how many there are. Smaller maps also run faster: a 768x512
# float32 step took 2.2 s in four strips against 5.3 s whole, one thread (research/postfilter/README.md).
STRIP_PIXELS = 1 << 17
MIN_STRIP_ROWS = 32
# A float32 step takes 2.4x a bf16 one: a CPU without native bf16 takes a third of the steps, in about the time.
FLOAT32_STEP_COST = 3
CPU = torch.device("cpu")


def pack_tuning(tuning: FilterTuning, exponent: int = LAYER_STEP_EXPONENTS[0]) -> bytes:
    """The ``FILT`` payload of a tuning already on its grid (as :func:`tune_filter` returns it): version 2 with the
    later offsets in steps of ``2 ** -exponent``, version 1 where it moves only the first layer's bias."""
    offsets = torch.round(tuning.bias / BIAS_STEP).to(torch.int8).numpy().tobytes()
    if not tuning.layers:
        return bytes([1, round(tuning.gain / GAIN_STEP)]) + offsets
    steps = [round(float(v) * 2**exponent) for layer in tuning.layers for v in layer]
    order = best_order(steps)
    return bytes([2, round(tuning.gain / GAIN_STEP)]) + offsets + bytes([exponent, order]) + encode_signed(steps, order)


def unpack_tuning(payload: bytes, postfilter: PostFilter) -> FilterTuning:
    """The tuning a ``FILT`` payload holds for ``postfilter``; FormatError if it is not one."""
    channels = postfilter.quality_bias.shape[1]
    prefix, version = FILTER_TUNING_PREFIX_SIZE + channels, payload[0]
    if version not in (1, 2):
        raise FormatError(f"filter chunk version {version} is not supported (written by a newer aecodec?)")
    if (len(payload) != prefix) if version == 1 else (len(payload) < prefix + 2):
        raise FormatError(f"invalid filter chunk: {len(payload)} bytes for a filter of {channels} channels")
    offsets = np.frombuffer(payload[FILTER_TUNING_PREFIX_SIZE:prefix], dtype=np.int8).astype(np.float32)
    bias, gain = torch.from_numpy(offsets) * BIAS_STEP, payload[1] * GAIN_STEP
    if version == 1:
        return FilterTuning(bias, gain)
    exponent, order = payload[prefix], payload[prefix + 1]
    if not MIN_LAYER_EXPONENT <= exponent <= MAX_LAYER_EXPONENT:
        raise FormatError(
            f"invalid filter chunk: step exponent {exponent} outside {MIN_LAYER_EXPONENT}..{MAX_LAYER_EXPONENT}"
        )
    sizes = [conv.out_channels for conv in postfilter.later_convolutions()]
    steps = torch.tensor(decode_signed(payload[prefix + 2 :], sum(sizes), order, MAX_LAYER_OFFSET), dtype=torch.float32)
    return FilterTuning(bias, gain, tuple(torch.split(steps / 2**exponent, sizes)))


def _as_tensor(pixels: np.ndarray) -> Tensor:
    """(1, 3, H, W) float32 in [0, 1] of (H, W, 3) uint8 ``pixels``, a copy (a caller's array may be read-only)."""
    return torch.tensor(pixels).permute(2, 0, 1)[None].float() / 255


def training_views(decoded: np.ndarray, original: np.ndarray) -> list[tuple[Tensor, Tensor]]:
    """(decoded, original) tensors to tune on: the whole image, or an even grid of crops of a large one."""
    height, width = decoded.shape[:2]
    if height * width <= MAX_TUNED_PIXELS or min(height, width) < CROP:
        return [(_as_tensor(decoded), _as_tensor(original))]
    count = MAX_TUNED_PIXELS // CROP**2
    rows = max(1, round((count * height / width) ** 0.5))
    columns = max(1, count // rows)
    tops = np.linspace(0, height - CROP, rows).round().astype(int)
    lefts = np.linspace(0, width - CROP, columns).round().astype(int)
    crops = [(slice(t, t + CROP), slice(left, left + CROP)) for t in tops for left in lefts]
    return [(_as_tensor(decoded[c]), _as_tensor(original[c])) for c in crops]


@dataclass(frozen=True)
class Piece:
    """Rows of a view that one thread differentiates: the input rows with their halo, the target of its own rows
    (``own``, within ``x``), and the element count of the whole view, whose mean squared error the pieces share."""

    x: Tensor
    target: Tensor
    own: slice
    elements: int


def tuning_pieces(views: list[tuple[Tensor, Tensor]], postfilter: PostFilter) -> list[Piece]:
    """The views cut into even strips of at most about STRIP_PIXELS output pixels (a crop stays whole), each with
    ``postfilter``'s halo, so that its own rows filter as in the whole view."""
    pieces = []
    for x, target in views:
        height, width = x.shape[2:]
        count = -(-height // max(MIN_STRIP_ROWS, STRIP_PIXELS // width))
        for low, start, stop, high in postfilter.strips(height, -(-height // count)):
            own = slice(start - low, stop - low)
            pieces.append(Piece(x[:, :, low:high], target[:, :, start:stop], own, target.numel()))
    return pieces


def piece_gradients(
    postfilter: PostFilter, piece: Piece, quality: Tensor, tuning: FilterTuning, bf16: bool
) -> tuple[Tensor, ...]:
    """The gradient, with respect to ``tuning``'s bias and later offsets, of the piece's share of its view's mean
    squared error after ``postfilter`` (its convolutions in bf16 if ``bf16``). Autocast and grad mode are per
    thread, so both are set here."""
    with torch.enable_grad():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            correction = postfilter.correction(piece.x, quality, tuning)
        filtered = piece.x[:, :, piece.own] + tuning.gain * correction.float()[:, :, piece.own]
        error = (filtered - piece.target).pow(2).sum() / piece.elements
        return torch.autograd.grad(error, (tuning.bias, *tuning.layers))


def _bf16_steps(device: torch.device) -> bool:
    """Whether the tuning's steps run in bf16: on a CPU where oneDNN computes in bf16 natively (AVX-512 BF16, AMX);
    elsewhere in float32 (a GPU's float32 steps are fast enough).

    A bf16 step takes 2.4x less time (768x512, one thread); its gradients are noisier, and 240 of them save
    more of a file than 80 float32 steps in about the same time (research/postfilter/README.md, session 18).
    Only the steps: the offsets are judged on the float32 filter the decoder runs.
    """
    return device.type == "cpu" and _native_bf16()


@cache
def _native_bf16() -> bool:
    """Whether oneDNN computes in bf16 natively on this CPU (a private torch query: False where it is missing)."""
    is_supported = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    return bool(is_supported is not None and is_supported())


def _on_grid(offsets: Tensor, exponent: int) -> Tensor:
    """``offsets`` rounded to steps of ``2 ** -exponent``, at most MAX_LAYER_OFFSET steps either way."""
    return torch.round(offsets * 2**exponent).clamp(-MAX_LAYER_OFFSET, MAX_LAYER_OFFSET) / 2**exponent


def tune_filter(
    postfilter: PostFilter,
    decoded: np.ndarray,
    original: np.ndarray,
    quality: int,
    steps: int,
    lagrangian: float,
    device: torch.device = CPU,
) -> bytes | None:
    """The ``FILT`` payload tuning ``postfilter`` to an image whose unfiltered decode is ``decoded`` (both (H, W, 3)
    uint8): of the later offsets' steps tried (or none moved), the one whose squared error on the rounded output
    (8-bit units) plus ``lagrangian`` times its chunk's bits is least; None where none beats the shared filter.
    ``steps`` are bf16 steps; a CPU without native bf16 takes a third as many float32 ones (:func:`_bf16_steps`).
    The steps run on ``device`` (a GPU's: ``--device cuda``), the judging on the CPU, as the decoder filters.
    """
    q, gain = torch.tensor([quality], device=device), float(postfilter.gain[quality - 1]) or 1.0
    stepped = postfilter if device.type == "cpu" else copy.deepcopy(postfilter).to(device)
    views = training_views(decoded, original)
    pieces = tuning_pieces([(x.to(device), target.to(device)) for x, target in views], postfilter)
    offset = torch.zeros(postfilter.quality_bias.shape[1], device=device, requires_grad=True)
    layers = tuple(
        torch.zeros(conv.out_channels, device=device, requires_grad=True) for conv in stepped.later_convolutions()
    )
    groups = [{"params": [offset], "lr": LEARNING_RATE}, {"params": list(layers), "lr": LAYER_LEARNING_RATE}]
    optimizer = torch.optim.Adam(groups)
    bf16 = _bf16_steps(device)
    slow_steps = device.type == "cpu" and not bf16
    stepping = FilterTuning(offset, gain, layers)
    gradients = partial(piece_gradients, stepped, quality=q, tuning=stepping, bf16=bf16)
    with one_onednn_thread() as threads, ThreadPoolExecutor(max(1, threads)) as pool:
        for _ in range(max(1, steps // FLOAT32_STEP_COST) if slow_steps else steps):
            for parameter, parts in zip((offset, *layers), zip(*pool.map(gradients, pieces))):
                parameter.grad = sum(parts[1:], parts[0])  # in piece order, whatever the thread count
            optimizer.step()
    offset, layers = offset.detach().cpu(), tuple(layer.detach().cpu() for layer in layers)
    shared = squared_error(postfilter.apply(decoded, quality), original)
    best, least = None, 0.0  # the cost of no chunk, relative to the shared filter's
    with torch.no_grad(), one_onednn_thread():
        bias = torch.round(offset / BIAS_STEP).clamp(-128, 127) * BIAS_STEP
        candidates = [(LAYER_STEP_EXPONENTS[0], ())]  # version 1: only the first layer's bias moves
        candidates += [(e, tuple(_on_grid(layer, e) for layer in layers)) for e in LAYER_STEP_EXPONENTS]
        for exponent, moved in candidates:
            fitted = postfilter.least_squares_gain(views, quality, FilterTuning(bias, gain, moved))
            tuning = FilterTuning(bias, float(np.clip(round(fitted / GAIN_STEP), 0, 255) * GAIN_STEP), moved)
            payload = pack_tuning(tuning, exponent)
            error = squared_error(postfilter.apply(decoded, quality, tuning), original)
            cost = error - shared + lagrangian * 8 * (CHUNK_OVERHEAD + len(payload))
            if cost < least:
                best, least = payload, cost
    return best
