"""A learned subspace of per-image weight offsets for the post-filter: the directions in which images pull its
weights apart, found once on training photos, so that a file codes a few coefficients instead of its own factors.

    PYTHONPATH=. python research/postfilter/subspace.py decodes OUT.npz PART/PARTS   # effort-2 decodes of photos
    PYTHONPATH=. python research/postfilter/subspace.py basis OUT.pt K DECODES.npz ...  # their gradients' SVD
    PYTHONPATH=. python research/postfilter/subspace.py probe BASIS.pt IMAGE:Q STEPS K LR [skip]

``decodes``: the training photos (not 010/020/030/040, held out; never Kodak), 768x512 centre crops, at QUALITIES.
``basis``: each decode's gradient of its filtered squared error with respect to every convolution's weights at the
shared filter, normalised (each decode counts once), then the top K right singular vectors of their stack: the
shared filter is a minimum of the mean loss, so these gradients are what differs between images.
``probe``: biases (as effort 5) and K coefficients along the basis trained together, the coefficients rounded to
steps of 2^-e and exponential-Golomb coded, judged like ``deltas_corrected.py`` (after the bound and the
corrections), against the shared filter and against effort 5's biases alone (``skip``: not run).
"""

import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from aecodec.bitstream.format import CORRECTION_FIELD, FILTER_TUNING, WIENER_FILTER, unpack
from aecodec.bitstream.golomb import best_order, code_bits
from aecodec.codec import filter_tuning as ft
from aecodec.codec.api import Codec
from aecodec.models.postfilter import FilterTuning, one_onednn_thread
from research.crops import load
from research.postfilter.deltas_corrected import judged, with_offsets
from research.postfilter.low_rank import convolutions, effort2_point, offset_correction

QUALITIES = (4, 9, 14, 19, 24)
HELD_OUT = {"010.png", "020.png", "030.png", "040.png"}


def decodes(out: str, part: str) -> None:
    index, parts = (int(v) for v in part.split("/"))
    codec = Codec()
    photos = sorted(p for p in Path("../shared/data/photos").glob("*.png") if p.name not in HELD_OUT)[index::parts]
    arrays = {}
    for path in photos:
        x = np.asarray(load(str(path)))
        for q in QUALITIES:
            arrays[f"{path.stem}_{q}_x"] = x
            arrays[f"{path.stem}_{q}_d"] = codec.decompress_unfiltered(bytes(codec.compress(x, q, effort=2)))
        print(path.name, flush=True)
    np.savez_compressed(out, **arrays)


def gradient(pf, decoded: np.ndarray, original: np.ndarray, quality: int) -> torch.Tensor:
    weights = [conv.weight for conv in convolutions(pf)]
    x, y = ft._as_tensor(decoded), ft._as_tensor(original)
    with torch.enable_grad():
        for w in weights:
            w.requires_grad_(True)
        loss = F.mse_loss(x + pf.gain[quality - 1] * pf.correction(x, torch.tensor([quality])), y)
        grads = torch.autograd.grad(loss, weights)
        for w in weights:
            w.requires_grad_(False)
    g = torch.cat([v.flatten() for v in grads])
    return g / g.norm()


def basis(out: str, k: int, files: list[str]) -> None:
    pf = Codec().model.postfilter
    rows = []
    with one_onednn_thread():
        for name in files:
            data = np.load(name)
            for key in sorted(data.files):
                if key.endswith("_d"):
                    quality = int(key.split("_")[1])
                    rows.append(gradient(pf, data[key], data[key[:-1] + "x"], quality))
    stack = torch.stack(rows)
    _, singular, vt = torch.linalg.svd(stack, full_matrices=False)
    energy = (singular**2).cumsum(0) / (singular**2).sum()
    shares = [round(float(energy[i - 1]), 3) for i in (8, 16, 32, 64)]
    print(f"{len(rows)} gradients; energy in the top 8/16/32/64: {shares}")
    torch.save(vt[:k].contiguous(), out)


def probe(basis_path: str, spec: str, steps: int, k: int, lr: float, skip_biases: bool) -> None:
    torch.set_num_threads(1)
    codec = Codec()
    pf = codec.model.postfilter
    directions = torch.load(basis_path)[:k]
    quality, original, data, unfiltered, _ = effort2_point(codec, spec)
    file, lam = unpack(data), codec._lagrangian(quality)
    file = file.without_chunk(WIENER_FILTER).without_chunk(CORRECTION_FIELD)
    gain = float(pf.gain[quality - 1]) or 1.0
    shapes = [conv.weight.shape for conv in convolutions(pf)]
    sizes = [int(np.prod(s)) for s in shapes]

    def weights(coefficients: torch.Tensor) -> tuple[torch.Tensor, ...]:
        flat = coefficients @ directions
        return tuple(part.reshape(shape) for part, shape in zip(torch.split(flat, sizes), shapes))

    rows = [("shared", *judged(codec, file, pf, None, unfiltered, original, quality, 0))]
    start = time.time()
    payloads = [] if skip_biases else ft.tune_filter(pf, unfiltered, original, quality, steps, lam)
    if payloads:
        biased = file.with_chunk(FILTER_TUNING, payloads[0])
        tuning = ft.unpack_tuning(payloads[0], pf)
        rows.append(("biases", *judged(codec, biased, pf, tuning, unfiltered, original, quality, 0)))
    t_bias = time.time() - start
    start = time.time()
    biases = [torch.zeros(conv.out_channels, requires_grad=True) for conv in convolutions(pf)]
    coefficients = torch.zeros(k, requires_grad=True)
    optimizer = torch.optim.Adam(
        [
            {"params": biases[:1], "lr": ft.LEARNING_RATE},
            {"params": biases[1:], "lr": ft.LAYER_LEARNING_RATE},
            {"params": [coefficients], "lr": lr},
        ]
    )
    x, y, q = ft._as_tensor(unfiltered), ft._as_tensor(original), torch.tensor([quality])
    with one_onednn_thread(), torch.enable_grad():
        for _ in range(steps):
            optimizer.zero_grad()
            with torch.autocast("cpu", dtype=torch.bfloat16):
                c = offset_correction(pf, x, q, weights(coefficients), biases)
            F.mse_loss(x + gain * c.float(), y).backward()
            optimizer.step()
    t_sub = time.time() - start
    # The biases as effort 5's chunk codes them: the first layer's in steps of 1/128, the later ones of 2^-7.
    first = torch.round(biases[0].detach() / ft.BIAS_STEP).clamp(-128, 127) * ft.BIAS_STEP
    grid = [first, *(ft._on_grid(b.detach(), 7) for b in biases[1:])]
    bias_bytes = len(ft.pack_tuning(FilterTuning(first, gain, tuple(grid[1:])), 7))
    coefficients = coefficients.detach()
    for exponent in (4, 6, 8, 10):
        steps_c = torch.round(coefficients * 2**exponent)
        values = [int(v) for v in steps_c]
        extra = (code_bits(values, best_order(values)) + 8 + 7) // 8  # the code, an exponent and order byte
        moved = with_offsets(pf, weights(steps_c / 2**exponent), grid)
        cost = judged(codec, file, moved, None, unfiltered, original, quality, CHUNK + bias_bytes + extra)
        rows.append((f"k{k} e{exponent} ({extra} B)", *cost))
    shared_cost, se0 = rows[0][1], rows[0][2]
    line = f"{spec.split('/')[-1]} {len(data)} B k {k} lr {lr} (|c| max {float(coefficients.abs().max()):.3f}; "
    line += f"{t_bias:.0f}s/{t_sub:.0f}s):"
    for label, cost, se, _ in rows:
        saved = (shared_cost - cost) / lam / (8 * len(data))
        line += f" | {label}: {saved:+.2%} (filt {10 * np.log10(se0 / se):+.3f} dB)"
    print(line, flush=True)


CHUNK = 12  # the chunk's tag, length and CRC

if __name__ == "__main__":
    command = sys.argv[1]
    if command == "decodes":
        decodes(sys.argv[2], sys.argv[3])
    elif command == "basis":
        basis(sys.argv[2], int(sys.argv[3]), sys.argv[4:])
    else:
        probe(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), float(sys.argv[6]), len(sys.argv) > 7)
