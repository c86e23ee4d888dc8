"""Range coding of the latent pyramid with the integer ARM and the table bank: 2 passes per level."""

from __future__ import annotations

import constriction
import numpy as np
import torch

from aecodec.bitstream.entropy import SymbolDecoder, SymbolEncoder
from research.enhancement.model import anchor_mask, contexts, integer_arm, level_shapes
from research.enhancement.tables import (
    BANK,
    FRAC_BITS,
    N_FRAC,
    SUPPORT,
    exact_bits,
    rows_and_symbols,
    shifts_and_rows,
    table_indices,
)

_MODELS = [
    constriction.stream.model.Categorical(BANK[t // N_FRAC, t % N_FRAC].astype(np.float64), perfect=False)
    for t in range(BANK.shape[0] * N_FRAC)
]


def integer_weights(arm: torch.nn.Module) -> list[tuple[np.ndarray, np.ndarray]]:
    """The (already quantized, step >= 2^-FRAC_BITS) ARM parameters as exact fixed-point integers."""
    s = float(1 << FRAC_BITS)
    out = []
    for layer in arm.layers:
        w = layer.weight.detach().double().numpy() * s
        b = layer.bias.detach().double().numpy() * s
        assert np.all(w == np.round(w)) and np.all(b == np.round(b)), "ARM not on the fixed-point grid"
        out.append((w.astype(np.int64), b.astype(np.int64)))
    return out


def _level_ctx(latents: list[torch.Tensor], level: int) -> np.ndarray:
    """(n, C) integer contexts of every position of ``level``."""
    ctx = contexts(latents[level : level + 2])[0]
    return ctx.flatten(2)[0].T.round().long().numpy()


def pass_masks(h: int, w: int) -> list[np.ndarray]:
    a = anchor_mask(h, w).flatten().bool().numpy()
    return [a, ~a]


def exact_latent_bits(latents: list[torch.Tensor], weights) -> float:
    """-log2 of integer table probabilities, the whole pyramid."""
    total = 0.0
    for level in range(len(latents)):
        ctx = _level_ctx(latents, level)
        mu, ls = integer_arm(weights, ctx)
        total += exact_bits(latents[level].flatten().long().numpy(), mu, ls)
    return total


def encode_latents(latents: list[torch.Tensor], weights) -> bytes:
    enc = SymbolEncoder()
    for level in reversed(range(len(latents))):
        y = latents[level].flatten().long().numpy()
        ctx = _level_ctx(latents, level)
        mu, ls = integer_arm(weights, ctx)
        rows, sym = rows_and_symbols(y, mu, ls)
        for m in pass_masks(*latents[level].shape[-2:]):
            enc.encode(sym[m], rows[m])
    return enc.finish()


def decode_latents(data: bytes, weights, height: int, width: int, levels: int) -> list[torch.Tensor]:
    dec = SymbolDecoder(data)
    shapes = level_shapes(height, width, levels)
    latents: list[torch.Tensor] = [torch.zeros(1, 1, h, w) for h, w in shapes]
    for level in reversed(range(levels)):
        h, w = shapes[level]
        y = np.zeros(h * w, dtype=np.int64)
        for m in pass_masks(h, w):
            ctx = _level_ctx(latents, level)[m]
            mu, ls = integer_arm(weights, ctx)
            rows, shift = shifts_and_rows(mu, ls)
            y[m] = dec.decode(rows) - (rows.shape[1] // 2) + shift
            latents[level] = torch.from_numpy(y.reshape(1, 1, h, w).astype(np.float32))
    return latents


def _groups(table_id: np.ndarray) -> list[tuple[int, np.ndarray]]:
    """Positions of one pass grouped by table, in increasing table order (the coding order)."""
    order = np.argsort(table_id, kind="stable")
    ids, starts = np.unique(table_id[order], return_index=True)
    return list(zip(ids.tolist(), np.split(order, starts[1:])))


def encode_latents_grouped(latents: list[torch.Tensor], weights) -> bytes:
    """Same content as :func:`encode_latents`, but each pass is coded table by table (<= 256 calls):
    no (n, alphabet) row array, so memory and time stay O(n)."""
    enc = constriction.stream.queue.RangeEncoder()
    for level in reversed(range(len(latents))):
        y = latents[level].flatten().long().numpy()
        mu, ls = integer_arm(weights, _level_ctx(latents, level))
        s, frac, shift = table_indices(mu, ls)
        for m in pass_masks(*latents[level].shape[-2:]):
            idx = np.flatnonzero(m)
            for t, g in _groups((s * N_FRAC + frac)[idx]):
                enc.encode((y[idx[g]] - shift[idx[g]] + SUPPORT).astype(np.int32), _MODELS[t])
    return enc.get_compressed().astype("<u4").tobytes()


def decode_latents_grouped(data: bytes, weights, height: int, width: int, levels: int) -> list[torch.Tensor]:
    dec = constriction.stream.queue.RangeDecoder(np.frombuffer(data, dtype="<u4").astype(np.uint32))
    shapes = level_shapes(height, width, levels)
    latents: list[torch.Tensor] = [torch.zeros(1, 1, h, w) for h, w in shapes]
    for level in reversed(range(levels)):
        h, w = shapes[level]
        y = np.zeros(h * w, dtype=np.int64)
        for m in pass_masks(h, w):
            idx = np.flatnonzero(m)
            mu, ls = integer_arm(weights, _level_ctx(latents, level)[idx])
            s, frac, shift = table_indices(mu, ls)
            for t, g in _groups(s * N_FRAC + frac):
                y[idx[g]] = dec.decode(_MODELS[t], len(g)).astype(np.int64) - SUPPORT + shift[g]
            latents[level] = torch.from_numpy(y.reshape(1, 1, h, w).astype(np.float32))
    return latents
