"""Encoder effort 5: the model's post-filter tuned to one image, carried in the file's ``FILT`` chunk.

The first per-image rung of the effort ladder (issue 19). The shared filter's bias vector at the
image's quality gets a per-image offset (one int8 per channel, steps of 1/128) and the gain a
per-image value (one byte, steps of 1/64): Adam on the decoded image against the original (a fixed
grid of crops of it on large images, so the work is bounded), then the gain by least squares. The
chunk is written only where the squared error it saves is worth its bits.
Payload (docs/FORMAT.md): version byte 1, gain byte, then the offsets as int8, one per channel.
"""

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from aecodec.bitstream.format import CHUNK_OVERHEAD, FILTER_TUNING_PREFIX_SIZE
from aecodec.errors import FormatError
from aecodec.models.postfilter import FilterTuning, PostFilter, one_onednn_thread

PAYLOAD_VERSION = 1
BIAS_STEP = 1 / 128
GAIN_STEP = 1 / 64
LEARNING_RATE = 0.01
CROP = 128  # side of the crops a large image is tuned on
# Images up to this are tuned whole, larger ones on a grid of crops of as many pixels: a 32-channel
# filter's activations and gradients take ~1 KB per pixel.
MAX_TUNED_PIXELS = 1 << 19


def pack_tuning(tuning: FilterTuning) -> bytes:
    """The ``FILT`` payload of a tuning already on its grid (as :func:`tune_filter` returns it)."""
    offsets = torch.round(tuning.bias / BIAS_STEP).to(torch.int8).numpy()
    return bytes([PAYLOAD_VERSION, round(tuning.gain / GAIN_STEP)]) + offsets.tobytes()


def unpack_tuning(payload: bytes, channels: int) -> FilterTuning:
    """The tuning a ``FILT`` payload holds for a filter of ``channels``; FormatError if it is not one."""
    if len(payload) != FILTER_TUNING_PREFIX_SIZE + channels:
        needed = FILTER_TUNING_PREFIX_SIZE + channels
        raise FormatError(f"invalid filter chunk: {len(payload)} bytes, the model's filter needs {needed}")
    if payload[0] != PAYLOAD_VERSION:
        raise FormatError(f"filter chunk version {payload[0]} is not supported (written by a newer aecodec?)")
    offsets = torch.from_numpy(np.frombuffer(payload[FILTER_TUNING_PREFIX_SIZE:], dtype=np.int8).astype(np.float32))
    return FilterTuning(offsets * BIAS_STEP, payload[1] * GAIN_STEP)


def _as_tensor(pixels: np.ndarray) -> Tensor:
    return torch.from_numpy(np.ascontiguousarray(pixels)).permute(2, 0, 1)[None].float() / 255


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


def _squared_error(a: np.ndarray, b: np.ndarray) -> int:
    return int(((a.astype(np.int32) - b) ** 2).sum())


def tune_filter(
    postfilter: PostFilter, decoded: np.ndarray, original: np.ndarray, quality: int, steps: int, lagrangian: float
) -> FilterTuning | None:
    """The tuning of ``postfilter`` for an image whose unfiltered decode is ``decoded`` (both (H, W, 3) uint8),
    or None where the squared error it saves on the rounded output (8-bit units) is not worth its chunk's bits
    at ``lagrangian`` squared error per bit."""
    views, q = training_views(decoded, original), torch.tensor([quality])
    gain = float(postfilter.gain[quality - 1]) or 1.0
    offset = torch.zeros(postfilter.quality_bias.shape[1], requires_grad=True)
    optimizer = torch.optim.Adam([offset], lr=LEARNING_RATE)
    with one_onednn_thread(), torch.enable_grad():
        for _ in range(steps):
            optimizer.zero_grad()
            for x, target in views:  # one view's activations alive at a time
                F.mse_loss(x + gain * postfilter.correction(x, q, offset), target).backward()
            optimizer.step()
    with torch.no_grad(), one_onednn_thread():
        bias = torch.round(offset.detach() / BIAS_STEP).clamp(-128, 127) * BIAS_STEP
        fitted = np.clip(round(postfilter.least_squares_gain(views, quality, bias) / GAIN_STEP), 0, 255)
        tuning = FilterTuning(bias, float(fitted * GAIN_STEP))
    saved = _squared_error(postfilter.apply(decoded, quality), original) - _squared_error(
        postfilter.apply(decoded, quality, tuning), original
    )
    bits = 8 * (CHUNK_OVERHEAD + len(pack_tuning(tuning)))
    return tuning if saved > lagrangian * bits else None
