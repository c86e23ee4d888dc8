"""The post-filter: a small CNN the decoder runs on its own output, to remove the codec's typical artifacts.

The residual layer's block edges and ringing and the base's blur look alike in every image, so a few
3x3 convolutions trained on decoded training photos (:mod:`aecodec.training.postfilter`) take part
of them away. The filter reads only decoded pixels and the quality, so it has no part in exact
decoding; like the synthesis, its float output may differ by rounding between machines. Its
correction is scaled per quality by a gain fitted on the training photos; a gain of 0 (where the
filter did not help) skips it.
"""

from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import repeat

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

STRIP_ROWS = 32  # rows filtered at a time at most, so that oneDNN's hidden maps stay small
# Wide images take fewer rows per strip (down to MIN_STRIP_ROWS): with a strip per thread in flight,
# 32 rows of a 6000-pixel-wide image took 190 MB more at the decode's peak.
STRIP_PIXELS = 1 << 17
MIN_STRIP_ROWS = 16


@contextmanager
def one_onednn_thread() -> Iterator[int]:
    """oneDNN's convolutions on one thread: 5x faster here than PyTorch's native ones on one thread.

    oneDNN picks its kernels by thread count, so its last bits (and a rounded pixel) could change with
    the caller's threads; on one thread they are the same whatever the caller's count. Yields the
    caller's thread count, for work split into independent parts (:meth:`PostFilter.apply`).
    """
    threads, mkldnn = torch.get_num_threads(), torch.backends.mkldnn.enabled
    torch.set_num_threads(1)
    torch.backends.mkldnn.enabled = True
    try:
        yield threads
    finally:
        torch.set_num_threads(threads)
        torch.backends.mkldnn.enabled = mkldnn


@dataclass(frozen=True)
class FilterTuning:
    """A file's own filter settings (encoder effort 5): a bias added to its quality's, offsets to the biases of
    the later convolutions, and the gain."""

    bias: Tensor  # (channels,) float32, added to the first layer's output after the quality's bias
    gain: float  # replaces the quality's gain; 0 skips the filter
    # Added to the biases of :meth:`PostFilter.later_convolutions`, one tensor each; empty: none moved.
    layers: tuple[Tensor, ...] = ()


def _convolve(layer: nn.Conv2d, x: Tensor, bias_offset: Tensor | None) -> Tensor:
    """``layer(x)`` with ``bias_offset`` (if any) added to its bias."""
    bias = layer.bias if bias_offset is None else layer.bias + bias_offset
    return F.conv2d(x, layer.weight, bias, padding=layer.padding)


class ResidualBlock(nn.Module):
    """h -> relu(h + conv(relu(conv(h)))): a block whose second convolution starts at zero is the identity on
    the filter's (non-negative) hidden maps, so blocks added to a trained filter start from it."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.inner = nn.Conv2d(channels, channels, 3, padding=1)
        self.outer = nn.Conv2d(channels, channels, 3, padding=1)
        nn.init.zeros_(self.outer.weight)
        nn.init.zeros_(self.outer.bias)

    def forward(self, hidden: Tensor, inner_offset: Tensor | None = None, outer_offset: Tensor | None = None) -> Tensor:
        inner = F.relu(_convolve(self.inner, hidden, inner_offset))
        return F.relu(hidden + _convolve(self.outer, inner, outer_offset))


class PostFilter(nn.Module):
    """x -> x + gain[q] * correction(x, q) on (N, 3, H, W) images in [0, 1], for qualities q in 1..qualities:
    three 3x3 convolutions (3 -> C -> C -> 3) with ``blocks`` residual blocks of two more before the last."""

    def __init__(self, qualities: int, channels: int = 32, blocks: int = 0) -> None:
        super().__init__()
        self.first = nn.Conv2d(3, channels, 3, padding=1)
        # Added to the first layer's output: tells the filter how strong a quality's artifacts are.
        self.quality_bias = nn.Parameter(torch.zeros(qualities, channels))
        self.middle = nn.Conv2d(channels, channels, 3, padding=1)
        self.blocks = nn.Sequential(*(ResidualBlock(channels) for _ in range(blocks)))
        self.last = nn.Conv2d(channels, 3, 3, padding=1)
        nn.init.zeros_(self.last.weight)  # training starts from the identity
        nn.init.zeros_(self.last.bias)
        self.register_buffer("gain", torch.ones(qualities))

    @property
    def halo(self) -> int:
        """Rows a strip needs beyond its own on each side: one per 3x3 convolution."""
        return 3 + 2 * len(self.blocks)

    def strips(self, height: int, rows: int) -> list[tuple[int, int, int, int]]:
        """(low, start, stop, high) of each strip of ``rows`` output rows of an image ``height`` rows high: its own
        rows start:stop, and the input rows low:high they depend on (the halo on either side where there is one)."""
        halo = self.halo
        return [
            (max(start - halo, 0), start, min(start + rows, height), min(start + rows + halo, height))
            for start in range(0, height, rows)
        ]

    def later_convolutions(self) -> list[nn.Conv2d]:
        """The convolutions after the first, in the order a :class:`FilterTuning`'s ``layers`` offset their biases:
        middle, each block's inner and outer, last."""
        return [self.middle, *(conv for block in self.blocks for conv in (block.inner, block.outer)), self.last]

    def correction(self, x: Tensor, quality: Tensor, tuning: FilterTuning | None = None) -> Tensor:
        """What the filter adds to ``x`` (N, 3, H, W) at 1-based ``quality`` (N,), before the gain, with a file's
        own ``tuning`` (its gain aside) if given."""
        shift = self.quality_bias[quality - 1] if tuning is None else self.quality_bias[quality - 1] + tuning.bias
        offsets = iter(tuning.layers) if tuning is not None and tuning.layers else repeat(None)
        hidden = F.relu(self.first(x) + shift[:, :, None, None])
        hidden = F.relu(_convolve(self.middle, hidden, next(offsets)))
        for block in self.blocks:
            hidden = block(hidden, next(offsets), next(offsets))
        return _convolve(self.last, hidden, next(offsets))

    @torch.no_grad()
    def least_squares_gain(
        self,
        pairs: Iterable[tuple[Tensor, Tensor]],
        quality: int,
        tuning: FilterTuning | None = None,
        weights: Iterable[float] | None = None,
    ) -> float:
        """The gain bringing ``x + gain * correction`` (with ``tuning``'s offsets) closest to the targets over
        (x, target) pairs (N, 3, H, W), each pair's squared error counted ``weights`` times (default once)."""
        dot = norm = 0.0
        for (x, target), weight in zip(pairs, repeat(1.0) if weights is None else weights):
            correction = self.correction(x, torch.tensor([quality]), tuning)
            dot += weight * float((correction * (target - x)).sum())
            norm += weight * float((correction**2).sum())
        return dot / max(norm, 1e-12)

    def for_qualities(self, sources: list[int]) -> "PostFilter":
        """A copy of this filter for another ladder: its quality q uses this filter's quality ``sources[q - 1]``."""
        rows = torch.tensor(sources) - 1
        copy = PostFilter(len(sources), self.first.out_channels, len(self.blocks))
        state = {**self.state_dict(), "quality_bias": self.quality_bias[rows], "gain": self.gain[rows]}
        copy.load_state_dict(state)
        return copy.eval().requires_grad_(False)

    def forward(self, x: Tensor, quality: Tensor) -> Tensor:
        return x + self.gain[quality - 1][:, None, None, None] * self.correction(x, quality)

    @torch.no_grad()
    def apply(self, pixels: np.ndarray, quality: int, tuning: FilterTuning | None = None) -> np.ndarray:
        """The filtered (H, W, 3) uint8 image, a strip of rows at a time (same result as the whole image at once),
        with the file's own ``tuning`` if it has one."""
        gain = float(self.gain[quality - 1]) if tuning is None else tuning.gain
        if gain == 0:
            return pixels
        out, (height, width), q = np.empty_like(pixels), pixels.shape[:2], torch.tensor([quality])
        rows = min(STRIP_ROWS, max(MIN_STRIP_ROWS, STRIP_PIXELS // width))

        def filter_strip(strip: tuple[int, int, int, int]) -> None:
            low, start, stop, high = strip
            x = torch.from_numpy(pixels[low:high].copy()).permute(2, 0, 1)[None].float() / 255
            y = (x + gain * self.correction(x, q, tuning))[0, :, start - low : stop - low]
            out[start:stop] = (y * 255).round().clamp(0, 255).byte().permute(1, 2, 0).numpy()

        # Strips are independent and each runs on one thread (the same pixels on any machine), so the
        # caller's threads filter several at once: torch releases the GIL inside a convolution.
        with one_onednn_thread() as threads, ThreadPoolExecutor(max(1, threads)) as pool:
            list(pool.map(filter_strip, self.strips(height, rows)))
        return out
