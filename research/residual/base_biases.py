"""Would the base decoder's biases, tuned to each image, pay under the residual layer? An oracle.

Run from the repository root: ``PYTHONPATH=. python research/residual/base_biases.py IMAGE QUALITIES all|first
[STEPS] [LR]``. At each quality the image's half-resolution base indices are fixed and the synthesis's biases
(every bias of the decoder, 563 numbers, or its first layer's 96) are tuned by Adam to the half-resolution image
(squared error); the effort-2 file is then coded with the tuned decoder (the residual coding what the better
base leaves) and compared with the shipped decoder's: bytes, PSNR and D + lambda R with the encoder's Lagrangian
(0.065 step^2 per bit), the biases' own bytes not counted.
"""

import sys

import numpy as np
import torch
from PIL import Image

from aecodec.codec.api import Codec
from aecodec.codec.tiling import pad_to_multiple, to_tensor
from aecodec.models.resampling import downsample2x


def coded(codec: Codec, x: np.ndarray, quality: int) -> tuple[int, float]:
    """Bytes of the effort-2 file and the squared error of its decode, summed over the image's values."""
    data = codec.compress(x, quality, effort=2)
    return len(data), float(np.square(np.asarray(codec.decompress(data)).astype(float) - x).sum())


def tune(codec: Codec, biases: list[torch.Tensor], half: np.ndarray, base_quality: int, steps: int, lr: float) -> float:
    """Adam on the biases toward the half-resolution image; the base's gain in dB."""
    network = codec.model.network
    target = to_tensor(half)
    top, bottom = network.encode(pad_to_multiple(target, network.stride), base_quality)
    with torch.no_grad():
        latents = (
            network.quantize_top.decode([i[None] for i in top]),
            network.quantize_bottom.decode([i[None] for i in bottom]),
        )
    optimizer = torch.optim.Adam(biases, lr=lr)
    losses = []
    for _ in range(steps + 1):
        loss = (network.synthesize(*latents)[..., : target.shape[2], : target.shape[3]] - target).pow(2).mean()
        losses.append(loss.item())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return 10 * np.log10(losses[0] / losses[-1])


def main() -> None:
    torch.set_num_threads(1)
    path, qualities, which = sys.argv[1], [int(q) for q in sys.argv[2].split(",")], sys.argv[3]
    steps, lr = (int(sys.argv[4]), float(sys.argv[5])) if len(sys.argv) > 5 else (150, 1e-3)
    codec = Codec()
    network = codec.model.network.requires_grad_(False)
    named = dict(network.named_parameters())
    names = ["decoder.0.bias"] if which == "first" else [n for n in named if n.startswith("decoder") and "bias" in n]
    biases = [named[n].requires_grad_(True) for n in names]
    shipped = [b.detach().clone() for b in biases]
    count = sum(b.numel() for b in biases)
    x = np.asarray(Image.open(path).convert("RGB"))
    for quality in qualities:
        level = codec.model.quality_plan(quality, True)[1]
        with torch.no_grad():
            for bias, value in zip(biases, shipped):
                bias.copy_(value)
        before = coded(codec, x, quality)
        gain = tune(codec, biases, downsample2x(x), level.half_base_quality, steps, lr)
        with torch.no_grad():
            after = coded(codec, x, quality)
        lagrangian = 0.065 * (level.step16 / 16) ** 2 * 8  # squared error per byte
        psnr = [10 * np.log10(255**2 * x.size / error) for _, error in (before, after)]
        saving = (after[1] + lagrangian * after[0]) / (before[1] + lagrangian * before[0]) - 1
        print(
            f"{path.split('/')[-1]} q{quality}: base +{gain:.3f} dB; {before[0]} -> {after[0]} B, "
            f"{psnr[0]:.3f} -> {psnr[1]:.3f} dB; D + lambda R {100 * saving:+.2f}% ({count} biases)",
            flush=True,
        )


if __name__ == "__main__":
    main()
