"""Encoder efforts 4 and 5: the model's post-filter fitted to one image, carried in the file's ``FILT`` chunk.

The per-image rungs of the effort ladder (issue 19). At effort 5 every bias of the shared filter gets
a per-image offset: the first layer's (its bias vector at the image's quality; one int8 per channel,
steps of 1/128) and those of the later convolutions (integers in steps of 2^-s, exponential-Golomb
coded), and the gain a per-image value (one byte, steps of 1/64): Adam on the decoded image against
the original (a fixed grid of crops of it on large images, so the work is bounded); then, for each
step 2^-s the encoder tries, the gain by least squares. At efforts 4 and 5 the last convolution, a
linear readout of the hidden maps, is then refitted to the image by least squares (a Wiener filter
on the filter's own features; its centre taps alone or all 9, offsets in steps of 2^-r). Of all these
candidates, the chunk of least squared error plus lambda times its bits is written, and only where it
saves more than it costs.
Payload (docs/FORMAT.md): version byte 3, gain byte, an offset byte per channel, the step's exponent s
and the code's order, the readout's exponent, order, taps and size, its code, then the later offsets'
code (version 2: no readout fields; version 1: the first three parts only).
"""

import copy
from dataclasses import replace
from functools import cache

import numpy as np
import torch
import torch.nn.functional as F
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
# The last convolution's weights and bias refitted by least squares (version 3): its offsets' steps 2^-r the encoder
# tries, the format's range of r, and the largest offset in steps.
READOUT_STEP_EXPONENTS = (7, 8, 9, 10)
MIN_READOUT_EXPONENT, MAX_READOUT_EXPONENT = 4, 12
MAX_READOUT_OFFSET = 4095
READOUT_RIDGE = 1e-4  # of the features' mean energy: keeps the least squares well posed on flat images
READOUT_STRIP_ROWS = 64  # rows of hidden maps unfolded at a time (288 features a pixel)
CROP = 128  # side of the crops a large image is tuned on
# Images up to this are tuned whole, larger ones on a grid of crops of as many pixels: a 32-channel
# filter's activations and gradients take ~1 KB per pixel.
MAX_TUNED_PIXELS = 1 << 19
# A float32 step takes 2.4x a bf16 one: a CPU without native bf16 takes a third of the steps, in about the time.
FLOAT32_STEP_COST = 3
CPU = torch.device("cpu")


def pack_tuning(
    tuning: FilterTuning, exponent: int = LAYER_STEP_EXPONENTS[0], readout_exponent: int = READOUT_STEP_EXPONENTS[0]
) -> bytes:
    """The ``FILT`` payload of a tuning already on its grid (as :func:`tune_filter` returns it): version 3 with a
    readout (offsets in steps of ``2 ** -readout_exponent``; the later offsets then must be given), version 2 with the
    later offsets in steps of ``2 ** -exponent``, version 1 where it moves only the first layer's bias."""
    offsets = torch.round(tuning.bias / BIAS_STEP).to(torch.int8).numpy().tobytes()
    if not tuning.layers:
        return bytes([1, round(tuning.gain / GAIN_STEP)]) + offsets
    steps = [round(float(v) * 2**exponent) for layer in tuning.layers for v in layer]
    order = best_order(steps)
    layers = bytes([exponent, order]), encode_signed(steps, order)
    if tuning.readout is None:
        return bytes([2, round(tuning.gain / GAIN_STEP)]) + offsets + b"".join(layers)
    weight, bias = tuning.readout
    taps = 1 if not weight.flatten(2)[:, :, [0, 1, 2, 3, 5, 6, 7, 8]].any() else 9
    kept = weight[:, :, 1:2, 1:2] if taps == 1 else weight
    values = [round(float(v) * 2**readout_exponent) for v in torch.cat([kept.flatten(), bias])]
    readout_order = best_order(values)
    readout = encode_signed(values, readout_order)
    head = bytes([3, round(tuning.gain / GAIN_STEP)]) + offsets + layers[0]
    return (
        head + bytes([readout_exponent, readout_order, taps]) + len(readout).to_bytes(2, "little") + readout + layers[1]
    )


def unpack_tuning(payload: bytes, postfilter: PostFilter) -> FilterTuning:
    """The tuning a ``FILT`` payload holds for ``postfilter``; FormatError if it is not one."""
    channels = postfilter.quality_bias.shape[1]
    prefix, version = FILTER_TUNING_PREFIX_SIZE + channels, payload[0]
    if version not in (1, 2, 3):
        raise FormatError(f"filter chunk version {version} is not supported (written by a newer aecodec?)")
    if (len(payload) != prefix) if version == 1 else (len(payload) < prefix + (2 if version == 2 else 7)):
        raise FormatError(f"invalid filter chunk: {len(payload)} bytes for a filter of {channels} channels")
    offsets = np.frombuffer(payload[FILTER_TUNING_PREFIX_SIZE:prefix], dtype=np.int8).astype(np.float32)
    bias, gain = torch.from_numpy(offsets) * BIAS_STEP, payload[1] * GAIN_STEP
    if version == 1:
        return FilterTuning(bias, gain)
    exponent, order = payload[prefix], payload[prefix + 1]
    _check_exponent(exponent, MIN_LAYER_EXPONENT, MAX_LAYER_EXPONENT)
    readout, start = None, prefix + 2
    if version == 3:
        readout, start = _unpack_readout(payload, start, channels)
    sizes = [conv.out_channels for conv in postfilter.later_convolutions()]
    steps = torch.tensor(decode_signed(payload[start:], sum(sizes), order, MAX_LAYER_OFFSET), dtype=torch.float32)
    return FilterTuning(bias, gain, tuple(torch.split(steps / 2**exponent, sizes)), readout)


def _check_exponent(exponent: int, low: int, high: int) -> None:
    if not low <= exponent <= high:
        raise FormatError(f"invalid filter chunk: step exponent {exponent} outside {low}..{high}")


def _unpack_readout(payload: bytes, start: int, channels: int) -> tuple[tuple[Tensor, Tensor], int]:
    """The readout offsets of a version 3 payload whose readout fields start at ``start``, and where they end."""
    exponent, order, taps = payload[start], payload[start + 1], payload[start + 2]
    _check_exponent(exponent, MIN_READOUT_EXPONENT, MAX_READOUT_EXPONENT)
    if taps not in (1, 9):
        raise FormatError(f"invalid filter chunk: {taps} readout taps (1 or 9)")
    size, start = int.from_bytes(payload[start + 3 : start + 5], "little"), start + 5
    if start + size > len(payload):
        raise FormatError("invalid filter chunk: its readout runs past its end")
    count = 3 * channels * taps
    values = decode_signed(payload[start : start + size], count + 3, order, MAX_READOUT_OFFSET)
    steps = torch.tensor(values, dtype=torch.float32) / 2**exponent
    weight = torch.zeros(3, channels, 3, 3)
    if taps == 1:
        weight[:, :, 1, 1] = steps[:count].reshape(3, channels)
    else:
        weight[:] = steps[:count].reshape(3, channels, 3, 3)
    return (weight, steps[count:]), start + size


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
    uint8): of the later offsets' steps tried (or none moved), each alone or with the last convolution refitted by
    least squares (:func:`_readout_equations`), the one whose squared error on the rounded output (8-bit units) plus
    ``lagrangian`` times its chunk's bits is least; None where none beats the shared filter.
    ``steps`` are bf16 steps (0: only the readout is refitted, on the shared filter); a CPU without native bf16 takes a
    third as many float32 ones (:func:`_bf16_steps`).
    The steps run on ``device`` (a GPU's: ``--device cuda``), the judging on the CPU, as the decoder filters.
    """
    gain = float(postfilter.gain[quality - 1]) or 1.0
    views = training_views(decoded, original)
    offset, layers = _stepped_offsets(postfilter, views, quality, gain, steps, device)
    shared = squared_error(postfilter.apply(decoded, quality), original)
    with torch.no_grad(), one_onednn_thread():

        def cost(
            tuning: FilterTuning, exponent: int, readout_exponent: int = MIN_READOUT_EXPONENT
        ) -> tuple[float, bytes]:
            """Squared error relative to the shared filter's plus lambda times the bits of ``tuning``'s chunk."""
            payload = pack_tuning(tuning, exponent, readout_exponent)
            error = squared_error(postfilter.apply(decoded, quality, tuning), original)
            return error - shared + lagrangian * 8 * (CHUNK_OVERHEAD + len(payload)), payload

        bias = torch.round(offset / BIAS_STEP).clamp(-128, 127) * BIAS_STEP
        candidates = [(LAYER_STEP_EXPONENTS[0], ())]  # version 1: only the first layer's bias moves
        candidates += [(e, tuple(_on_grid(layer, e) for layer in layers)) for e in LAYER_STEP_EXPONENTS]
        best, least, start = None, 0.0, (LAYER_STEP_EXPONENTS[0], FilterTuning(bias * 0, _on_gain_grid(gain), ()))
        for exponent, moved in candidates if steps else ():
            fitted = postfilter.least_squares_gain(views, quality, FilterTuning(bias, gain, moved))
            tuning = FilterTuning(bias, _on_gain_grid(fitted), moved)
            candidate_cost, payload = cost(tuning, exponent)
            if candidate_cost < least:
                best, least, start = payload, candidate_cost, (exponent, tuning)
        # Then the last convolution refitted on top of the best (or the shared filter): a readout of 1 or 9 taps.
        exponent, tuning = start
        if tuning.gain > 0:
            tuning = replace(tuning, layers=tuning.layers or tuple(torch.zeros_like(layer) for layer in layers))
            equations = _readout_equations(postfilter, views, quality, tuning)
            for taps in (1, 9):
                weight, readout_bias = _solve_readout(*equations, taps)
                for e in READOUT_STEP_EXPONENTS:
                    readout = (_on_readout_grid(weight, e), _on_readout_grid(readout_bias, e))
                    candidate_cost, payload = cost(replace(tuning, readout=readout), exponent, e)
                    if candidate_cost < least:
                        best, least = payload, candidate_cost
    return best


def _stepped_offsets(
    postfilter: PostFilter,
    views: list[tuple[Tensor, Tensor]],
    quality: int,
    gain: float,
    steps: int,
    device: torch.device,
) -> tuple[Tensor, tuple[Tensor, ...]]:
    """The first layer's bias offset and the later convolutions' (on the CPU) after ``steps`` Adam steps on
    ``device`` bringing the filtered ``views`` (decoded, original) closer to their originals (zeros for no steps)."""
    q = torch.tensor([quality], device=device)
    stepped = postfilter if device.type == "cpu" else copy.deepcopy(postfilter).to(device)
    stepped_views = [(x.to(device), target.to(device)) for x, target in views]  # the same tensors on a CPU
    offset = torch.zeros(postfilter.quality_bias.shape[1], device=device, requires_grad=True)
    layers = tuple(
        torch.zeros(conv.out_channels, device=device, requires_grad=True) for conv in stepped.later_convolutions()
    )
    groups = [{"params": [offset], "lr": LEARNING_RATE}, {"params": list(layers), "lr": LAYER_LEARNING_RATE}]
    optimizer = torch.optim.Adam(groups)
    bf16 = _bf16_steps(device)
    slow_steps = device.type == "cpu" and not bf16
    with one_onednn_thread(), torch.enable_grad():
        for _ in range(max(1, steps // FLOAT32_STEP_COST) if slow_steps and steps else steps):
            optimizer.zero_grad()
            for x, target in stepped_views:  # one view's activations alive at a time
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                    correction = stepped.correction(x, q, FilterTuning(offset, gain, layers))
                F.mse_loss(x + gain * correction.float(), target).backward()
            optimizer.step()
    return offset.detach().cpu(), tuple(layer.detach().cpu() for layer in layers)


def _on_gain_grid(gain: float) -> float:
    return float(np.clip(round(gain / GAIN_STEP), 0, 255) * GAIN_STEP)


def _on_readout_grid(offsets: Tensor, exponent: int) -> Tensor:
    """``offsets`` rounded to steps of ``2 ** -exponent``, at most MAX_READOUT_OFFSET steps either way."""
    return torch.round(offsets * 2**exponent).clamp(-MAX_READOUT_OFFSET, MAX_READOUT_OFFSET) / 2**exponent


def _readout_equations(
    postfilter: PostFilter, views: list[tuple[Tensor, Tensor]], quality: int, tuning: FilterTuning
) -> tuple[Tensor, Tensor]:
    """The normal equations (gram (F, F), right side (F, 3)) of the offsets to the last convolution's 9 taps of every
    hidden map, and its bias (F = 9 C + 1), that bring ``tuning``'s output closest to the originals in squared error:
    a Wiener filter on the hidden maps, linear in the offsets since the gain is fixed."""
    q, gain = torch.tensor([quality]), tuning.gain
    gram = rhs = None
    for x, target in views:
        hidden = postfilter.hidden(x, q, tuning)
        wanted = (target - x) / gain - postfilter.correction(x, q, tuning)
        padded = F.pad(hidden, (1, 1, 1, 1))
        for top in range(0, x.shape[2], READOUT_STRIP_ROWS):
            bottom = min(top + READOUT_STRIP_ROWS, x.shape[2])
            taps = F.unfold(padded[:, :, top : bottom + 2], 3)[0]  # (9 C, rows x width), the conv weights' order
            features = torch.cat([taps, torch.ones(1, taps.shape[1])])
            goal = wanted[0, :, top:bottom].reshape(3, -1)
            strip_gram, strip_rhs = features @ features.T, features @ goal.T
            gram = strip_gram if gram is None else gram + strip_gram
            rhs = strip_rhs if rhs is None else rhs + strip_rhs
    return gram.double(), rhs.double()


def _solve_readout(gram: Tensor, rhs: Tensor, taps: int) -> tuple[Tensor, Tensor]:
    """Offsets (3, C, 3, 3) to the last convolution's weights and (3,) to its bias from :func:`_readout_equations`,
    with only the centre taps free when ``taps`` is 1."""
    channels = (gram.shape[0] - 1) // 9
    free = torch.arange(gram.shape[0]) if taps == 9 else torch.cat([torch.arange(channels) * 9 + 4, torch.tensor([-1])])
    free = free % gram.shape[0]
    system = gram[free][:, free]
    system = system + READOUT_RIDGE * system.diagonal().mean() * torch.eye(len(free), dtype=system.dtype)
    solution = torch.zeros(gram.shape[0], 3, dtype=gram.dtype)
    solution[free] = torch.linalg.solve(system, rhs[free])
    weight = solution[:-1].T.reshape(3, channels, 3, 3).float()
    return weight, solution[-1].float()
