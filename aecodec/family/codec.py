"""Family members as benchmark codecs (the ``CodecUnderTest`` protocol), sized by real byte counts.

Continuous members (ae, dae, sparse, contractive, vae by its posterior mean) code their latent
by uniform scalar quantization, one step size per quality in units of each channel's spread on
the fitting images, with CompressAI's ``EntropyBottleneck`` (fitted per quality on those images'
latents; its integer CDF tables make decoding exact). VQ members (vqvae, vqgan, kmeans) code
their indices with one static frequency table (the fitting images' histogram, +1 smoothing)
through the project's range coder. Either way the bytes are a :mod:`container` stream.
Simplification: the networks were trained without quantization or a rate term; only the entropy
models see the quantized latents.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from compressai.entropy_models import EntropyBottleneck
from PIL import Image
from torch import Tensor, nn

from aecodec.bitstream.entropy import MAX_ROW_TOTAL, SymbolDecoder, SymbolEncoder
from aecodec.codec.images import list_images
from aecodec.errors import FormatError
from aecodec.family.container import pack, unpack
from aecodec.family.trainer import load_member
from aecodec.training.data import center_crops, load_image_tensor

# Quantization steps per quality (coarse to fine), in units of each latent channel's standard deviation.
DEFAULT_STEPS = (1.0, 0.5, 0.25, 0.125, 0.0625, 0.03125)
FIT_BATCH = 8
FIT_SAMPLES = 4096


def image_to_batch(img: Image.Image, stride: int) -> Tensor:
    """A (1, 3, H', W') float tensor in [0, 1], edge-padded so both sides are multiples of ``stride``."""
    x = torch.from_numpy(np.asarray(img.convert("RGB")).copy()).permute(2, 0, 1)[None].float() / 255
    return F.pad(x, (0, -x.shape[3] % stride, 0, -x.shape[2] % stride), mode="replicate")


def batch_to_image(x: Tensor, height: int, width: int) -> Image.Image:
    """The top-left ``height`` x ``width`` of a (1, 3, H', W') tensor as an 8-bit RGB image."""
    pixels = (x[0, :, :height, :width].clamp(0, 1) * 255).round().to(torch.uint8)
    return Image.fromarray(pixels.permute(1, 2, 0).cpu().numpy())


def fit_entropy_bottleneck(
    symbols: Tensor, iterations: int, lr: float = 1e-2, max_samples: int = FIT_SAMPLES
) -> EntropyBottleneck:
    """A factorized density fitted to (N, C, h, w) pre-rounding symbols, CDF tables updated for coding.

    The density is per channel, so a fixed random subset of ``max_samples`` positions fits it as
    well as all of them, at a fraction of the cost.
    """
    channels = symbols.shape[1]
    values = symbols.transpose(0, 1).reshape(channels, -1)
    if values.shape[1] > max_samples:
        keep = torch.randperm(values.shape[1], generator=torch.Generator().manual_seed(0))[:max_samples]
        values = values[:, keep]
    symbols = values.reshape(1, channels, 1, -1)
    bottleneck = EntropyBottleneck(channels)
    density = [p for name, p in bottleneck.named_parameters() if name != "quantiles"]
    optimizer = torch.optim.Adam(density, lr=lr)
    aux_optimizer = torch.optim.Adam([bottleneck.quantiles], lr=lr)
    for _ in range(iterations):
        _, likelihoods = bottleneck(symbols)
        bits = -likelihoods.log2().mean()
        optimizer.zero_grad()
        bits.backward()
        optimizer.step()
        aux_loss = bottleneck.loss()
        aux_optimizer.zero_grad()
        aux_loss.backward()
        aux_optimizer.step()
    bottleneck.update(force=True)
    return bottleneck.eval()


@torch.no_grad()
def _encode_all(encode, images: Tensor) -> Tensor:
    return torch.cat([encode(batch) for batch in images.split(FIT_BATCH)])


@dataclass
class LatentCodec:
    """A continuous member's latent, scalar-quantized and coded by a per-quality EntropyBottleneck."""

    name: str
    description: str
    model: nn.Module
    channel_scale: Tensor
    steps: tuple[float, ...]
    bottlenecks: nn.ModuleList

    @property
    def qualities(self) -> list[int]:
        return list(range(1, len(self.steps) + 1))

    def _step(self, quality: int) -> Tensor:
        if quality not in self.qualities:
            raise FormatError(f"{self.name}: quality must be in 1..{len(self.steps)}, got {quality}")
        return self.steps[quality - 1] * self.channel_scale.view(1, -1, 1, 1)

    @torch.no_grad()
    def encode(self, img: Image.Image, quality: int) -> bytes:
        symbols = self.model.encode(image_to_batch(img, self.model.stride)) / self._step(quality)
        strings = self.bottlenecks[quality - 1].compress(symbols)
        return pack([quality, img.height, img.width, *symbols.shape[1:]], strings)

    @torch.no_grad()
    def decode(self, data: bytes) -> Image.Image:
        (quality, height, width, _, latent_h, latent_w), strings = unpack(data)
        step = self._step(quality)
        symbols = self.bottlenecks[quality - 1].decompress(strings, (latent_h, latent_w))
        return batch_to_image(self.model.decode(symbols * step), height, width)


def fit_latent_codec(
    name: str, model: nn.Module, images: Tensor, steps: tuple[float, ...] = DEFAULT_STEPS, iterations: int = 300
) -> LatentCodec:
    """A :class:`LatentCodec` whose scales and entropy models are fitted on ``images`` (N, 3, H, W)."""
    model.eval()
    codes = _encode_all(model.encode, images)
    scale = codes.transpose(0, 1).flatten(1).std(dim=1).clamp(min=1e-6)
    bottlenecks = nn.ModuleList(
        fit_entropy_bottleneck(codes / (step * scale.view(1, -1, 1, 1)), iterations) for step in steps
    )
    description = f"family {name}: latent scalar quantization + EntropyBottleneck, steps {list(steps)} x channel std"
    return LatentCodec(name, description, model, scale, tuple(steps), bottlenecks)


def frequency_table(indices: Tensor, num_codes: int) -> np.ndarray:
    """Index histogram + 1 as int64 (num_codes,), scaled down if its total exceeds the coder's precision."""
    counts = torch.bincount(indices.flatten().cpu(), minlength=num_codes).numpy().astype(np.int64)
    total = counts.sum() + num_codes
    if total > MAX_ROW_TOTAL:
        counts = counts * (MAX_ROW_TOTAL - num_codes) // total
    return counts + 1


@dataclass
class IndexCodec:
    """A VQ member's code indices range-coded with one static frequency table; a single quality."""

    name: str
    description: str
    model: nn.Module
    frequencies: np.ndarray

    @property
    def qualities(self) -> list[int]:
        return [1]

    def _table(self, n: int) -> np.ndarray:
        return np.broadcast_to(self.frequencies, (n, len(self.frequencies)))

    @torch.no_grad()
    def encode(self, img: Image.Image, quality: int) -> bytes:
        if quality not in self.qualities:
            raise ValueError(f"{self.name} has the single quality 1, got {quality}")
        indices = self.model.encode_indices(image_to_batch(img, self.model.stride))[0]
        encoder = SymbolEncoder()
        encoder.encode(indices.flatten().cpu().numpy(), self._table(indices.numel()))
        return pack([quality, img.height, img.width, *indices.shape], [encoder.finish()])

    @torch.no_grad()
    def decode(self, data: bytes) -> Image.Image:
        (_, height, width, latent_h, latent_w), (stream,) = unpack(data)
        indices = SymbolDecoder(stream).decode(self._table(latent_h * latent_w))
        indices = torch.from_numpy(indices).view(1, latent_h, latent_w)
        return batch_to_image(self.model.decode_indices(indices), height, width)


def fit_index_codec(name: str, model: nn.Module, images: Tensor) -> IndexCodec:
    """An :class:`IndexCodec` whose frequency table is the index histogram of ``images`` (N, 3, H, W)."""
    model.eval()
    indices = _encode_all(model.encode_indices, images)
    description = f"family {name}: {model.num_codes} codes, static frequency table, range coder"
    return IndexCodec(name, description, model, frequency_table(indices, model.num_codes))


def fit_codec(name: str, model: nn.Module, images: Tensor, iterations: int = 300) -> LatentCodec | IndexCodec:
    """The codec adapter for any member: index coding for VQ members, else latent coding fitted ``iterations`` steps."""
    if hasattr(model, "encode_indices"):
        return fit_index_codec(name, model, images)
    return fit_latent_codec(name, model, images, iterations=iterations)


def codec_from_checkpoint(
    checkpoint: str | Path, fit_images: str | Path, crop: int = 256, max_images: int = 64, iterations: int = 300
) -> LatentCodec | IndexCodec:
    """Load a trained member and fit its codec on centre crops of (at most ``max_images``) training images."""
    name, model = load_member(checkpoint)
    images = center_crops([load_image_tensor(f, crop) for f in list_images(fit_images)[:max_images]], crop)
    return fit_codec(name, model, images, iterations)
