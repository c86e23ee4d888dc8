"""Measurements for the family report beyond the RD benchmark, each on the evaluation images.

Denoising (AE vs DAE on corrupted inputs), codebook usage of the VQ members, VAE samples and
interpolations, and ST-LPIPS of codecs at a matched rate. Every number is measured on 8-bit RGB.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image
from torch import Tensor, nn

from aecodec.bench.baselines import CodecUnderTest
from aecodec.bench.datasets import DatasetImage, center_crop
from aecodec.bench.metrics import capped_db, defined_mean, psnr
from aecodec.bench.runner import CodecResult
from aecodec.family.codec import batch_to_image, image_to_batch
from aecodec.family.denoising import corrupt_image
from aecodec.family.vae import VAE
from aecodec.models.quantizer import code_stats
from aecodec.training.loop import LOG
from aecodec.training.perceptual import st_lpips


@dataclass(frozen=True)
class Corruption:
    """One test corruption: Gaussian noise sigma (on [0, 1] pixels) and a share of masked square patches."""

    label: str
    noise_sigma: float = 0.0
    mask_fraction: float = 0.0
    mask_patch: int = 8


CORRUPTIONS = (
    Corruption("clean"),
    Corruption("Gaussian noise, sigma 0.1", noise_sigma=0.1),
    Corruption("25% of 8x8 patches masked", mask_fraction=0.25),
    Corruption("noise and masking", noise_sigma=0.1, mask_fraction=0.25),
)


@dataclass(frozen=True)
class DenoisingRow:
    """Mean PSNR (dB, against the clean image) of the corrupted input and of each model's output."""

    corruption: str
    corrupted_psnr: float
    model_psnr: dict[str, float]


def _to_batch(image: DatasetImage, stride: int) -> Tensor:
    return image_to_batch(Image.fromarray(image.pixels), stride)


def _psnr_to(image: DatasetImage, x: Tensor) -> float:
    """PSNR of a (1, 3, H', W') tensor, cut to the image and rounded to 8 bits, against the image."""
    height, width = image.pixels.shape[:2]
    return capped_db(psnr(image.pixels, batch_to_image(x, height, width)))


@torch.no_grad()
def denoising_study(
    models: dict[str, nn.Module],
    images: Sequence[DatasetImage],
    seed: int = 0,
    corruptions: Sequence[Corruption] = CORRUPTIONS,
) -> list[DenoisingRow]:
    """Each model reconstructs the same seeded corruptions of ``images``; PSNR is to the clean image."""
    stride = max(m.stride for m in models.values())
    rows = []
    for corruption in corruptions:
        torch.manual_seed(seed)
        corrupted_psnr, model_psnr = [], {name: [] for name in models}
        for image in images:
            x = _to_batch(image, stride)
            noisy = corrupt_image(x, corruption.noise_sigma, corruption.mask_fraction, corruption.mask_patch)
            corrupted_psnr.append(_psnr_to(image, noisy))
            for name, model in models.items():
                model_psnr[name].append(_psnr_to(image, model.eval()(noisy)))
        rows.append(
            DenoisingRow(
                corruption.label,
                defined_mean(corrupted_psnr),
                {name: defined_mean(values) for name, values in model_psnr.items()},
            )
        )
    return rows


@dataclass(frozen=True)
class CodebookUsage:
    """How a VQ member uses its codebook on a set of images."""

    num_codes: int
    used_share: float
    perplexity: float

    @property
    def bits_per_index(self) -> float:
        """Entropy of the index histogram in bits (log2 of the perplexity)."""
        return math.log2(self.perplexity)


@torch.no_grad()
def codebook_usage(model: nn.Module, images: Sequence[DatasetImage]) -> CodebookUsage:
    """Share of codes used and perplexity of a VQ member's indices over all ``images``."""
    model.eval()
    indices = torch.cat([model.encode_indices(_to_batch(img, model.stride)).flatten() for img in images])
    perplexity, used = code_stats(indices, model.num_codes)
    return CodebookUsage(model.num_codes, used, perplexity)


def tensor_row(images: Tensor) -> Image.Image:
    """(N, 3, H, W) images in [0, 1] side by side as one 8-bit RGB image."""
    row = torch.cat(list(images.clamp(0, 1)), dim=2)
    return Image.fromarray((row * 255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy())


@torch.no_grad()
def write_vae_figures(
    vae: VAE, images: Sequence[DatasetImage], out: Path, size: int = 128, count: int = 8, seed: int = 0
) -> list[Path]:
    """vae_samples.png (``count`` draws from the prior) and vae_interpolation.png (between two image crops)."""
    vae.eval()
    torch.manual_seed(seed)
    samples = out / "vae_samples.png"
    tensor_row(vae.sample(count, size, size)).save(samples)
    ends = [
        _to_batch(DatasetImage(img.name, center_crop(img.pixels, size)), vae.stride)[0]
        for img in (images[0], images[-1])
    ]
    interpolation = out / "vae_interpolation.png"
    tensor_row(vae.interpolate(ends[0], ends[1], count)).save(interpolation)
    return [samples, interpolation]


def bracketing_qualities(result: CodecResult, target_bpp: float) -> list[int]:
    """The qualities whose mean bpp is nearest below and nearest above ``target_bpp`` (one if the other is missing)."""
    means = dict(zip(result.qualities, result.mean("bpp")))
    below = [q for q in result.qualities if means[q] <= target_bpp]
    above = [q for q in result.qualities if means[q] > target_bpp]
    chosen = [max(below, key=means.get)] if below else []
    return chosen + ([min(above, key=means.get)] if above else [])


@torch.no_grad()
def mean_st_lpips(codec: CodecUnderTest, quality: int, images: Sequence[DatasetImage]) -> float:
    """Mean ST-LPIPS distance (lower is closer) of ``codec``'s reconstructions; nan if ST-LPIPS is missing."""
    distances = []
    for image in images:
        source = Image.fromarray(image.pixels)
        decoded = codec.decode(codec.encode(source, quality)).convert("RGB")
        pair = [image_to_batch(img, 1) for img in (source, decoded)]
        distance = st_lpips(*pair)
        if distance is None:
            return math.nan
        distances.append(float(distance))
    return defined_mean(distances)


def final_train_psnr(run: Path, tail: int = 10) -> tuple[int, float]:
    """A run's last logged step and the mean training PSNR of its last ``tail`` log rows (batches are noisy)."""
    rows = [json.loads(line) for line in (run / LOG).read_text().splitlines() if line.strip()]
    return rows[-1]["step"], defined_mean([r["psnr"] for r in rows[-tail:]])
