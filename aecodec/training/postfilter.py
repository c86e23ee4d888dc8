"""Train a model's post-filter on its own decodes of training photos.

Usage: ``aecodec fit-postfilter --model NAME --data DIR --out FILE.safetensors --name NEW``. Every
training photo is coded and decoded without post-filter at a few qualities (spread so that every
quality is seen);
the filter (:mod:`aecodec.models.postfilter`) learns by Adam on random crops to map the decodes to
the photos (squared error), then each quality's gain is fitted by least squares on the whole
decodes, and set to 0 where the rounded, filtered decodes were no closer to the photos. With
``--weighting psnr`` each decode's squared error counts in inverse proportion to its mean, so that
training raises the mean PSNR (what a benchmark averages) instead of lowering the total error, which
the busiest photos dominate. ``--start`` continues from the model's own filter, with ``--blocks``
residual blocks added as the identity, so a deeper filter starts where the shipped one is.
"""

import argparse
import hashlib
import time

import numpy as np
import torch
from PIL import Image

from aecodec.codec.api import Codec
from aecodec.codec.files import check_writable, write_atomic
from aecodec.codec.images import list_images
from aecodec.errors import InputError
from aecodec.models.model_files import CodecModel, check_model_name, model_bytes, resolve_model
from aecodec.models.postfilter import PostFilter
from aecodec.training.data import split_files
from aecodec.training.loop import text_table, trainer_parser
from aecodec.training.residual import VALIDATION_FRACTION

Decode = tuple[int, torch.Tensor, torch.Tensor]  # quality, decoded and original (3, H, W) uint8


def decodes(codec: Codec, images: list[np.ndarray], per_image: int) -> list[Decode]:
    """Each image decoded at ``per_image`` qualities, taken in turn from the whole ladder."""
    out, qualities = [], codec.qualities
    for i, pixels in enumerate(images):
        for j in range(per_image):
            quality = qualities[(i * per_image + j) % len(qualities)]
            decoded = codec.decompress_unfiltered(codec.compress(pixels, quality))
            out.append((quality, *(torch.from_numpy(a).permute(2, 0, 1) for a in (decoded, pixels))))
    return out


def psnr_weights(pairs: list[Decode]) -> list[float]:
    """Each decode's weight for training toward the mean PSNR: a decode's PSNR moves by -10 / ln 10 times
    the relative change of its squared error, so its error counts 1 / MSE (normalized to a mean of 1)."""
    inverse = [1 / max(float(((d.float() - o.float()) ** 2).mean()), 1e-2) for _, d, o in pairs]
    return [w * len(inverse) / sum(inverse) for w in inverse]


def random_batch(pairs: list[Decode], weights: list[float], batch: int, crop: int, generator: torch.Generator) -> tuple:
    """(qualities (N,), decoded crops, original crops in [0, 1], weights (N,)), crops at random places of
    random decodes."""
    qualities, inputs, targets = [], [], []
    chosen = torch.randint(len(pairs), (batch,), generator=generator).tolist()
    for k in chosen:
        quality, decoded, original = pairs[k]
        top = int(torch.randint(decoded.shape[1] - crop + 1, (1,), generator=generator))
        left = int(torch.randint(decoded.shape[2] - crop + 1, (1,), generator=generator))
        qualities.append(quality)
        inputs.append(decoded[:, top : top + crop, left : left + crop])
        targets.append(original[:, top : top + crop, left : left + crop])
    crops = torch.stack(inputs).float() / 255, torch.stack(targets).float() / 255
    return torch.tensor(qualities), *crops, torch.tensor([weights[k] for k in chosen])


def train(
    postfilter: PostFilter,
    pairs: list[Decode],
    weights: list[float],
    steps: int,
    batch: int,
    crop: int,
    seed: int,
    rate: float = 1e-3,
) -> None:
    """Adam on weighted squared error, learning rate ``rate`` then a fifth of it for the last 30% of the steps."""
    optimizer = torch.optim.Adam(postfilter.parameters(), lr=rate)
    generator, start = torch.Generator().manual_seed(seed), time.perf_counter()
    for step in range(1, steps + 1):
        if step == int(0.7 * steps):
            for group in optimizer.param_groups:
                group["lr"] = rate / 5
        quality, x, target, weight = random_batch(pairs, weights, batch, crop, generator)
        error = (x + postfilter.correction(x, quality) - target).square().mean((1, 2, 3))
        loss = (weight * error).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % 500 == 0 or step == steps:
            print(f"step {step}/{steps}: loss {loss.item():.3g}, {time.perf_counter() - start:.0f} s", flush=True)


def squared_error(a: np.ndarray, b: torch.Tensor) -> float:
    return float(((torch.from_numpy(a).permute(2, 0, 1).float() - b.float()) ** 2).sum())


@torch.no_grad()
def fit_gains(postfilter: PostFilter, pairs: list[Decode], weights: list[float]) -> list[list]:
    """Set each quality's gain by weighted least squares over its decodes (0 if rounding then loses); report
    per quality."""
    report = []
    for quality in range(1, len(postfilter.gain) + 1):
        chosen = [(d, o, w) for (q, d, o), w in zip(pairs, weights) if q == quality]
        postfilter.gain[quality - 1] = 1.0 if chosen else 0.0
        if not chosen:
            report.append([quality, 0, "0.000", "-"])
            continue
        scaled = ((d[None].float() / 255, o[None].float() / 255) for d, o, _ in chosen)
        gain = postfilter.least_squares_gain(scaled, quality, weights=(w for _, _, w in chosen))
        postfilter.gain[quality - 1] = float(np.clip(gain, 0, 4))
        before = sum(w * squared_error(d.permute(1, 2, 0).numpy(), o) for d, o, w in chosen)
        filtered = (postfilter.apply(d.permute(1, 2, 0).numpy().copy(), quality) for d, _, _ in chosen)
        after = sum(w * squared_error(f, o) for f, (_, o, w) in zip(filtered, chosen))
        if after >= before:
            postfilter.gain[quality - 1] = 0.0
        gained = 10 * np.log10(before / min(before, after)) if before else 0.0
        report.append([quality, len(chosen), f"{float(postfilter.gain[quality - 1]):.3f}", f"{gained:+.3f}"])
    return report


def starting_filter(model: CodecModel, channels: int, blocks: int, start: bool) -> PostFilter:
    """A fresh filter of ``channels`` and ``blocks``, or with ``start`` the model's own with ``blocks`` in all."""
    if not start:
        return PostFilter(model.num_qualities, channels, blocks)
    own = model.postfilter
    if own is None or len(own.blocks) > blocks:
        raise InputError(f"--start needs a model with a post-filter of at most {blocks} blocks")
    postfilter = PostFilter(model.num_qualities, own.first.out_channels, blocks)
    postfilter.load_state_dict(own.state_dict(), strict=False)  # the missing blocks keep their identity start
    return postfilter.requires_grad_(True)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model",
        default=None,
        help="model to filter: a shipped name or a .safetensors path (default: the default model)",
    )
    parser.add_argument("--data", required=True, help="folder of training images (never Kodak)")
    parser.add_argument("--out", required=True, help="model file to write (.safetensors)")
    parser.add_argument("--name", required=True, help="name of the new model")
    parser.add_argument("--channels", type=int, default=32, help="hidden channels of the filter")
    parser.add_argument("--blocks", type=int, default=0, help="residual blocks (two convolutions each) of the filter")
    parser.add_argument(
        "--start",
        action="store_true",
        help="start from the model's own filter (its channels; blocks it lacks start as the identity)",
    )
    parser.add_argument("--rate", type=float, default=1e-3, help="Adam's learning rate (a fifth for the last 30%%)")
    parser.add_argument("--per-image", type=int, default=3, help="qualities each training image is decoded at")
    parser.add_argument("--steps", type=int, default=8000, help="Adam steps")
    parser.add_argument("--batch", type=int, default=16, help="crops per step")
    parser.add_argument("--crop", type=int, default=64, help="crop side in pixels")
    parser.add_argument("--seed", type=int, default=0, help="seed of the filter's initialisation and the crops")
    parser.add_argument(
        "--weighting",
        choices=("mse", "psnr"),
        default="mse",
        help="what training lowers: the total squared error, or minus the mean PSNR (each decode's error / its MSE)",
    )
    parser.add_argument("--force", action="store_true", help="replace OUT if it exists")


def main(argv: list[str] | None = None) -> int:
    args = trainer_parser("aecodec fit-postfilter", __doc__, add_arguments).parse_args(argv)
    check_model_name(args.name)
    check_writable(args.out, args.force)
    model = resolve_model(args.model)
    torch.manual_seed(args.seed)
    files = split_files(list_images(args.data), VALIDATION_FRACTION)[0]
    images = [np.asarray(Image.open(f).convert("RGB")) for f in files]
    pairs = decodes(Codec(model), images, args.per_image)
    print(f"{len(pairs)} decodes of {len(images)} images", flush=True)
    weights = psnr_weights(pairs) if args.weighting == "psnr" else [1.0] * len(pairs)
    postfilter = starting_filter(model, args.channels, args.blocks, args.start)
    train(postfilter, pairs, weights, args.steps, args.batch, args.crop, args.seed, args.rate)
    report = fit_gains(postfilter.eval(), pairs, weights)
    metadata = {"postfilter_data": str(args.data), "postfilter_weighting": args.weighting}
    data = model_bytes(args.name, model.network, model.prior, model.residual, metadata, postfilter)
    write_atomic(args.out, data, force=args.force)
    print(text_table(["quality", "decodes", "gain", "training dB"], report))
    print(f"saved {args.out} (sha256 {hashlib.sha256(data).hexdigest()[:16]})")
    return 0
