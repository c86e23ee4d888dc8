"""The family report: train every member at a matched latent size, then compare them on Kodak.

``python -m aecodec.family.compare --train-data ../shared/data/photos --runs runs/family
--steps 3000 --dataset ../shared/data/kodak --out docs/models --page docs/models.md`` trains the
members missing from ``--runs`` (finished runs are reused), benchmarks them as codecs next to the
shipped VQ-VAE-2 codec (``aec``), its VQ-GAN decoder (``aec:vqvae2-gan``) and JPEG, runs the studies
of :mod:`studies` and writes the page.
"""

from __future__ import annotations

import argparse
import math
import os
import shlex
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from aecodec.bench.baselines import CodecUnderTest, get_codec
from aecodec.bench.crops import write_crop_grid
from aecodec.bench.datasets import DatasetImage, load_dataset
from aecodec.bench.report import (
    BD_NOTE,
    METRIC_TITLES,
    ReportInputs,
    bd_table,
    markdown_table,
    points_table,
    references,
    write_report,
)
from aecodec.bench.runner import BenchRun, CodecResult, run_benchmark
from aecodec.family.codec import codec_from_checkpoint
from aecodec.family.studies import (
    bracketing_qualities,
    codebook_usage,
    denoising_study,
    final_train_psnr,
    mean_st_lpips,
    write_vae_figures,
)
from aecodec.family.trainer import FamilyTrainConfig, train_family
from aecodec.training.loop import CHECKPOINT, RunOptions, load_checkpoint

# Every backbone member at the VQ-VAE-2 bottom level's latent size: 16 channels at 1/8 resolution.
MATCHED_LATENT = {"stride": 8, "latent_dim": 16, "channels": 64}
RESIZE_DECODER = {**MATCHED_LATENT, "upsample": "resize"}
CROP_IMAGES = ("kodim23.png", "kodim13.png")
# A shipped VQ-VAE-2 with its decoder retrained as a VQ-GAN (`aecodec finetune --objective gan`), and that VQ-VAE-2.
HIERARCHICAL_VQGAN, HIERARCHICAL_SOURCE = "aec:vqvae2-gan", "aec:vqvae2-base"


@dataclass(frozen=True)
class Recipe:
    """How the report trains one member: settings over its defaults, a share of ``steps``, a starting run."""

    settings: dict
    step_share: float = 1.0
    init: str = ""


RECIPES: dict[str, Recipe] = {
    "ae": Recipe(MATCHED_LATENT),
    "dae": Recipe(MATCHED_LATENT),
    "sparse": Recipe(MATCHED_LATENT),
    "contractive": Recipe(MATCHED_LATENT),
    "vae": Recipe(MATCHED_LATENT),
    "kmeans": Recipe({}, step_share=0.1),
    # The VQ pair decodes with resize-convolutions, as VQGAN's decoder does: fine-tuned through its
    # perceptual and GAN terms, a transposed-convolution decoder covers the images in a grid.
    "vqvae": Recipe(RESIZE_DECODER),
    # Fine-tuned from the trained VQ-VAE (its terms cost ~15x a VQ-VAE step on a CPU); the
    # discriminator trains alone for 100 steps; L1 leads, ST-LPIPS (VGG) and the GAN term nudge:
    # at the paper's weights (1.0 and 0.8) this small decoder paints streaks and shifts colours.
    "vqgan": Recipe(
        {**RESIZE_DECODER, "perceptual_weight": 0.2, "adversarial_weight": 0.1, "adversarial_start": 100},
        step_share=0.1,
        init="vqvae",
    ),
}


def train_members(train_data: str | Path, runs_dir: str | Path, steps: int, threads: int = 0) -> dict[str, Path]:
    """Train (or finish) each member of :data:`RECIPES` in ``runs_dir/NAME``; name -> run folder."""
    runs = {}
    for name, recipe in RECIPES.items():
        run = Path(runs_dir) / name
        init = str(Path(runs_dir) / recipe.init / CHECKPOINT) if recipe.init else ""
        config = FamilyTrainConfig(
            model=name,
            data=str(train_data),
            out=str(run),
            settings=recipe.settings,
            steps=max(1, round(steps * recipe.step_share)),
            threads=threads,
            init=init,
        )
        train_family(config, RunOptions(resume=True))
        runs[name] = run
    return runs


def latent_summary(model: torch.nn.Module) -> str:
    """What a member stores per image position, e.g. '16 ch at 1/8' or '1 of 512 codes per 8x8'."""
    if hasattr(model, "num_codes"):
        return f"1 of {model.num_codes} codes per {model.stride}x{model.stride}"
    return f"{model.config.latent_dim} ch at 1/{model.stride}"


def _fmt(value: float, digits: int = 2) -> str:
    return f"{value:.{digits}f}"


def training_table(runs: dict[str, Path], models: dict[str, torch.nn.Module]) -> list[str]:
    """Markdown rows: member, latent, settings, steps, batch x crop, mean training PSNR at the end."""
    rows = []
    for name, run in runs.items():
        train = load_checkpoint(run / CHECKPOINT)["train"]
        step, train_psnr = final_train_psnr(run)
        settings = ", ".join(f"{k}={v}" for k, v in train["settings"].items()) or "defaults"
        start = f" (from {RECIPES[name].init})" if name in RECIPES and RECIPES[name].init else ""
        rows.append(
            [
                name,
                latent_summary(models[name]),
                settings,
                f"{step}{start}",
                f"{train['batch']} x {train['crop']}",
                _fmt(train_psnr),
            ]
        )
    return markdown_table(["member", "latent", "settings", "steps", "batch x crop", "train PSNR dB"], rows)


def codec_section(run: BenchRun, figures: str) -> list[str]:
    """BD-rate tables against JPEG and aec, the RD plots, and each codec's mean points."""
    measured = [r.curve() for r in run.codecs]
    lines = []
    for metric, title in METRIC_TITLES.items():
        lines += [*([""] if lines else []), f"BD-rate, {title}. {BD_NOTE}", ""]
        lines += bd_table(measured, references(measured, []), metric)
    lines += ["", f"![RD PSNR]({figures}/rd_psnr.png)", "", f"![RD MS-SSIM]({figures}/rd_msssim.png)"]
    for result in run.codecs:
        lines += ["", f"Mean points, `{result.name}`:", ""] + points_table(result)
    return lines


def denoising_section(models: dict[str, torch.nn.Module], images: Sequence[DatasetImage]) -> list[str]:
    """The AE and the DAE reconstructing the same seeded corruptions of the images."""
    pair = {name: models[name] for name in ("ae", "dae") if name in models}
    if not pair:
        return ["No ae/dae run."]
    header = ["input", "corrupted input", *(f"{name} output" for name in pair)]
    rows = [
        [r.corruption, _fmt(r.corrupted_psnr), *(_fmt(r.model_psnr[name]) for name in pair)]
        for r in denoising_study(pair, images)
    ]
    note = "Mean PSNR (dB) against the clean image; corruptions drawn with seed 0, the same for both models."
    return [note, "", *markdown_table(header, rows)]


def codebook_section(
    models: dict[str, torch.nn.Module], results: dict[str, CodecResult], images: Sequence[DatasetImage]
) -> list[str]:
    """Codebook usage and index entropy of each VQ member, with its coded bpp."""
    rows = []
    for name, model in models.items():
        if not hasattr(model, "num_codes"):
            continue
        usage = codebook_usage(model, images)
        rows.append(
            [
                name,
                str(usage.num_codes),
                f"{100 * usage.used_share:.1f}%",
                _fmt(usage.perplexity, 1),
                _fmt(usage.bits_per_index),
                _fmt(results[name].mean("bpp")[0], 4),
            ]
        )
    header = ["member", "codes", "used", "perplexity", "bits/index (entropy)", "coded bpp"]
    return markdown_table(header, rows) if rows else ["No VQ member."]


def vae_section(images: Sequence[DatasetImage], figures: str) -> list[str]:
    """The figures of :func:`write_vae_figures` with what they show."""
    ends = f"central crops of {images[0].name} and {images[-1].name}"
    return [
        "Eight draws from the prior N(0, I):",
        "",
        f"![VAE samples]({figures}/vae_samples.png)",
        "",
        f"Decoded along the line between the posterior means of {ends}:",
        "",
        f"![VAE interpolation]({figures}/vae_interpolation.png)",
    ]


def matched_rate_section(
    gan: str,
    rivals: Sequence[str],
    codecs: dict[str, CodecUnderTest],
    results: dict[str, CodecResult],
    images: Sequence[DatasetImage],
    out: Path,
    figures: str,
) -> list[str]:
    """The VQ-GAN ``gan`` against ``rivals`` at the qualities around its lowest bpp, with crops."""
    if gan not in results:
        return [f"No {gan} run."]
    target = results[gan].mean("bpp")[0]
    rows, coded = [], []
    for name in dict.fromkeys((gan, *rivals)):
        if name not in results:
            continue
        result = results[name]
        for quality in bracketing_qualities(result, target):
            index = result.qualities.index(quality)
            lpips = mean_st_lpips(codecs[name], quality, images)
            rows.append(
                [
                    name,
                    str(quality),
                    _fmt(result.mean("bpp")[index], 4),
                    _fmt(result.mean("psnr")[index]),
                    _fmt(result.mean("ms_ssim")[index], 4),
                    "n/a" if math.isnan(lpips) else _fmt(lpips, 4),
                ]
            )
        coded.append(result)
    lines = [
        (
            f"Each codec at its qualities with mean bpp nearest below and above {gan}'s {target:.4f} bpp; "
            "ST-LPIPS (AlexNet, lower is closer) averaged over the images. Crops: each codec at its "
            "quality closest to that rate on the image."
        ),
        "",
    ]
    lines += markdown_table(["codec", "quality", "bpp", "PSNR dB", "MS-SSIM", "ST-LPIPS"], rows)
    crop_images = [img for img in images if img.name in CROP_IMAGES] or list(images[:1])
    for image in crop_images:
        name = f"matched_{gan.replace(':', '_')}_{Path(image.name).stem}.png"
        write_crop_grid(coded, image, [target], out / name)
        lines += ["", f"![{image.name} at {gan}'s rate]({figures}/{name})"]
    return lines


def hierarchical_note() -> list[str]:
    """What the hierarchical VQ-GAN is, and why its bits equal VQ-VAE-2's."""
    return [
        (
            f"`{HIERARCHICAL_VQGAN}` is the shipped VQ-VAE-2 `{HIERARCHICAL_SOURCE}` whose decoder was retrained "
            "with the VQ-GAN objective (L1 + ST-LPIPS with a VGG trunk + PatchGAN hinge under the adaptive weight) "
            f"by `aecodec finetune --objective gan`. Its encoder, codebooks and prior are `{HIERARCHICAL_SOURCE}`'s, "
            "so each image codes to the same indices: only the reconstruction differs."
        ),
        "",
    ]


def write_page(path: Path, command: str, dataset: str, figures: str, sections: dict[str, list[str]]) -> Path:
    """docs/models.md: the command that made it, then one section per study."""
    lines = [
        "# The autoencoder family on " + Path(dataset).name,
        "",
        "Generated, numbers and figures included, by",
        "",
        "```bash",
        command,
        "```",
        "",
        f"Full benchmark report (speed, per-codec JSON): [{figures}/report.md]({figures}/report.md).",
    ]
    for title, body in sections.items():
        lines += ["", f"## {title}", "", *body]
    path.write_text("\n".join(lines) + "\n")
    return path


def compare(
    runs: dict[str, Path],
    train_data: str | Path,
    dataset: str | Path,
    out: str | Path,
    page: str | Path,
    command: str,
    limit: int | None = None,
    iterations: int = 300,
) -> list[Path]:
    """Benchmark the trained ``runs`` with aec and JPEG, run the studies, write the report and the page."""
    out, page = Path(out), Path(page)
    images = load_dataset(dataset, limit)
    codecs = {
        name: codec_from_checkpoint(run / CHECKPOINT, train_data, iterations=iterations) for name, run in runs.items()
    }
    models = {name: codec.model for name, codec in codecs.items()}
    codecs |= {name: get_codec(name) for name in ("aec", HIERARCHICAL_SOURCE, HIERARCHICAL_VQGAN, "jpeg")}
    crop_images = [images[0].name, *(img.name for img in images if img.name in CROP_IMAGES)]
    run = run_benchmark(list(codecs.values()), images, str(dataset), crop_images=crop_images)
    written = write_report(run, ReportInputs(crop_image=images[0]), out)
    results = {r.name: r for r in run.codecs}
    figures = Path(os.path.relpath(out, page.parent)).as_posix()
    written += write_vae_figures(models["vae"], images, out) if "vae" in models else []
    sections = {
        "Members and training": training_table(runs, models),
        "As codecs": codec_section(run, figures),
        "Denoising: AE against DAE on corrupted inputs": denoising_section(models, images),
        "VAE samples and interpolation": vae_section(images, figures) if "vae" in models else ["No vae run."],
        "Codebook usage": codebook_section(models, results, images),
        "Hierarchical VQ-GAN against VQ-VAE-2 on the same indices": hierarchical_note()
        + matched_rate_section(
            HIERARCHICAL_VQGAN, (HIERARCHICAL_SOURCE, "jpeg"), codecs, results, images, out, figures
        ),
        "Single-level VQ-GAN against VQ-VAE-2 at the same rate": matched_rate_section(
            "vqgan", ("aec", "vqvae", "jpeg"), codecs, results, images, out, figures
        ),
    }
    return [*written, write_page(page, command, str(dataset), figures, sections)]


def main(argv: list[str] | None = None) -> int:
    prog = "python -m aecodec.family.compare"
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    parser.add_argument(
        "--train-data", required=True, help="training images, also used to fit the entropy models (never Kodak)"
    )
    parser.add_argument("--runs", required=True, help="folder of run folders, one per member (reused when finished)")
    parser.add_argument("--steps", type=int, default=3000, help="training steps per member (kmeans and vqgan a share)")
    parser.add_argument("--dataset", required=True, help="evaluation images, e.g. Kodak")
    parser.add_argument("--out", required=True, help="folder for the benchmark report and figures")
    parser.add_argument("--page", required=True, help="the generated page, e.g. docs/models.md (beside --out)")
    parser.add_argument("--limit", type=int, help="only the first N images of the dataset")
    parser.add_argument("--threads", type=int, default=0, help="torch threads for training (0: torch's default)")
    args = parser.parse_args(argv)
    runs = train_members(args.train_data, args.runs, args.steps, args.threads)
    command = f"{prog} {shlex.join(sys.argv[1:] if argv is None else argv)}"
    for path in compare(runs, args.train_data, args.dataset, args.out, args.page, command, args.limit):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
