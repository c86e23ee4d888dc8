"""The base's synthesis fine-tuned for what the codec makes of it (session 31, not adopted).

Every residual level codes its base at half resolution (base qualities 1-3) and upsamples it with the codec's
bicubic before adding the residual; the synthesis was trained on full-resolution crops at every quality. This
trains the synthesis alone (the encoder, codebooks and prior frozen, so every file keeps its indices and bits)
on the training photos (010/020/030/040 held out, as fit-residual holds them out) downsampled as the codec
does, the loss on the upsampled output against the full-resolution photo: plain squared error, or with
``--lowpass SIGMA`` mostly that of the error blurred by a Gaussian of SIGMA full-resolution pixels (the scales
the residual codes worst, research/residual/README.md, session 17) plus a quarter of the plain one. The model
file written is ``vqvae2-wide`` with the new synthesis; ``swap`` puts that synthesis into another model file
(a residual layer's) to judge it without refitting the layer, ``psnr`` gives the upsampled base's PSNR.

    PYTHONPATH=. python research/base/synthesis.py train OUT.safetensors STEPS LR [--lowpass SIGMA]
    PYTHONPATH=. python research/base/synthesis.py swap MODEL.safetensors SYNTHESIS.safetensors OUT.safetensors NAME
    PYTHONPATH=. python research/base/synthesis.py psnr MODEL IMAGE...
"""

import argparse
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import save_file
from torch import Tensor

from aecodec.codec.images import load_source
from aecodec.codec.tiling import pad_to_multiple
from aecodec.models.manifest import WEIGHTS_DIR
from aecodec.models.model_files import resolve_model
from aecodec.models.resampling import downsample2x, upsample2x
from aecodec.models.vqvae2 import VQVAE2

PHOTOS = Path(__file__).resolve().parents[2].parent / "shared/data/photos"
HELD_OUT = {"010.png", "020.png", "030.png", "040.png"}
SOURCE = "vqvae2-wide"
QUALITIES = (1, 2, 3)  # the half bases' qualities
TAPS = torch.tensor([-3, 29, 111, -9], dtype=torch.float32) / 128  # resampling.upsample2x's, in float
CROP, MARGIN, BATCH = 16, 2, 8  # bottom-latent positions of a crop and of the context around it, crops per step
SYNTHESIS = ("net.decoder.", "net.upsample_top.")


def upsample(x: Tensor) -> Tensor:
    """:func:`upsample2x` in float on (B, C, H, W), differentiable (the same values before rounding)."""

    def double(t: Tensor) -> Tensor:  # along the last axis
        flat = F.pad(t.reshape(-1, 1, t.shape[-1]), (2, 2), mode="replicate")
        even = F.conv1d(flat[:, :, :-1], TAPS.view(1, 1, 4))
        odd = F.conv1d(flat[:, :, 1:], TAPS.flip(0).view(1, 1, 4))
        return torch.stack([even, odd], -1).reshape(*t.shape[:-1], 2 * t.shape[-1])

    return double(double(x).transpose(-1, -2)).transpose(-1, -2)


def blur(x: Tensor, sigma: float) -> Tensor:
    """A separable Gaussian of ``sigma`` on each channel, the valid part."""
    t = torch.arange(-int(3 * sigma), int(3 * sigma) + 1, dtype=torch.float32)
    k = torch.exp(-(t**2) / (2 * sigma**2))
    k, c = k / k.sum(), x.shape[1]
    x = F.conv2d(x, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(x, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def latents(network: VQVAE2, half: np.ndarray, quality: int) -> tuple[Tensor, Tensor]:
    """The quantized (top, bottom) latents of a half-resolution image at ``quality``, as the codec codes them."""
    x = pad_to_multiple(torch.tensor(half).permute(2, 0, 1)[None].float() / 255, network.stride)
    with torch.no_grad():
        top, bottom = network.analyze(x, torch.tensor([quality]))
        n_top, n_bottom = network.stages_for_quality(quality)
        return network.quantize_top.decode(top.indices[:n_top]), network.quantize_bottom.decode(
            bottom.indices[:n_bottom]
        )


def train(out: str, steps: int, lr: float, lowpass: float) -> None:
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    network = resolve_model(SOURCE).network.float().eval().requires_grad_(False)
    parameters = [*network.upsample_top.parameters(), *network.decoder.parameters()]
    for p in parameters:
        p.requires_grad_(True)
    samples, start = [], time.time()
    for path in sorted(PHOTOS.glob("*.png")):
        if path.name not in HELD_OUT:
            full = load_source(str(path), 1 << 30, True).pixels[:, :, :3]
            half, target = downsample2x(full), torch.tensor(full).permute(2, 0, 1).float() / 255
            samples += [(*latents(network, half, q), target, half.shape[:2]) for q in QUALITIES]
    optimizer = torch.optim.Adam(parameters, lr=lr)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 0.5 * (1 + np.cos(np.pi * min(s, steps) / steps)))
    side, losses = CROP + 2 * MARGIN, []
    for step in range(steps):
        tops, bottoms, targets = [], [], []
        for _ in range(BATCH):
            top, bottom, target, (height, width) = samples[rng.integers(len(samples))]
            y = 2 * rng.integers(0, max(0, height // 8 - side) // 2 + 1)  # even: the top level is half as fine
            x = 2 * rng.integers(0, max(0, width // 8 - side) // 2 + 1)
            bottoms.append(bottom[:, :, y : y + side, x : x + side])
            tops.append(top[:, :, y // 2 : (y + side) // 2, x // 2 : (x + side) // 2])
            fy, fx = 16 * (y + MARGIN), 16 * (x + MARGIN)  # full-resolution pixels of the crop's core
            targets.append(target[:, fy : fy + 16 * CROP, fx : fx + 16 * CROP])
        decoded = network.synthesize(torch.cat(tops), torch.cat(bottoms)).clamp(0, 1)
        core = slice(16 * MARGIN, 16 * (MARGIN + CROP))
        error = upsample(decoded)[:, :, core, core] - torch.stack(targets)
        loss = error.pow(2).mean()
        if lowpass:
            loss = 0.25 * loss + blur(error, lowpass).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        losses.append(loss.item())
        if (step + 1) % 100 == 0:
            print(f"step {step + 1} loss {np.mean(losses):.6f} {time.time() - start:.0f} s", flush=True)
            losses = []
    swap(str(WEIGHTS_DIR / resolve_model(SOURCE).name) + ".safetensors", network, out, Path(out).stem)


def swap(model: str, synthesis: VQVAE2 | str, out: str, name: str) -> None:
    """``model``'s file with the synthesis of ``synthesis`` (a network, or another model file), named ``name``."""
    with safe_open(model, "pt") as f:
        names = list(f.keys())
        metadata, tensors = dict(f.metadata()), {k: f.get_tensor(k) for k in names}
    if isinstance(synthesis, str):
        with safe_open(synthesis, "pt") as f:
            names = list(f.keys())
            new = {k: f.get_tensor(k) for k in names if k.startswith(SYNTHESIS)}
    else:
        state = synthesis.state_dict()
        new = {k: state[k.removeprefix("net.")].detach() for k in tensors if k.startswith(SYNTHESIS)}
    tensors.update({k: v.to(tensors[k].dtype).contiguous() for k, v in new.items()})
    save_file(tensors, out, metadata={**metadata, "name": name})


def psnr(model: str, images: list[str]) -> None:
    """PSNR of each image's upsampled half base at qualities 1-3 (8-bit, as the codec rounds it)."""
    network = resolve_model(model).network.float()
    for quality in QUALITIES:
        values = []
        for image in images:
            full = load_source(image, 1 << 30, True).pixels[:, :, :3]
            half = downsample2x(full)
            with torch.no_grad():
                decoded = network.synthesize(*latents(network, half, quality)).clamp(0, 1)
            pixels = (decoded[0, :, : half.shape[0], : half.shape[1]] * 255).round().byte().permute(1, 2, 0).numpy()
            error = upsample2x(pixels, full.shape[1], full.shape[0]).astype(np.float64) - full
            values.append(10 * np.log10(255**2 / np.mean(error**2)))
        print(f"{model} q{quality}: " + " ".join(f"{v:.2f}" for v in values) + f" (mean {np.mean(values):.3f} dB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    fit = commands.add_parser("train")
    fit.add_argument("out")
    fit.add_argument("steps", type=int)
    fit.add_argument("lr", type=float)
    fit.add_argument("--lowpass", type=float, default=0.0)
    put = commands.add_parser("swap")
    for name in ("model", "synthesis", "out", "name"):
        put.add_argument(name)
    measure = commands.add_parser("psnr")
    measure.add_argument("model")
    measure.add_argument("images", nargs="+")
    args = parser.parse_args()
    if args.command == "train":
        train(args.out, args.steps, args.lr, args.lowpass)
    elif args.command == "swap":
        swap(args.model, args.synthesis, args.out, args.name)
    else:
        psnr(args.model, args.images)


if __name__ == "__main__":
    main()
