"""What a prior trained by passes.py would do to the Kodak curve: every file of docs/bench/results.json (the
default model at effort 2, real sizes) less the base bits the new prior saves on that image at its level's
half-base quality (its float bits against the shipped integer prior's exact ones; the integer twin of a float
prior codes within about 0.3% of it), then BD-rates against the real files and against AVIF.

    PYTHONPATH=. python research/prior/passes_estimate.py CACHE ORDER PRIOR.pt
"""

import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

from aecodec.bench.bdrate import bd_rate, shared_range
from aecodec.codec.api import Codec
from aecodec.models.integer_prior import code_length
from research.prior.finetune import batch, dataset
from research.prior.passes import Prior

RESULTS = Path(__file__).resolve().parents[2] / "docs/bench/results.json"
SIX = ("kodim01.png", "kodim04.png", "kodim08.png", "kodim13.png", "kodim19.png", "kodim23.png")


def main() -> None:
    cache, order, state = sys.argv[1], sys.argv[2], sys.argv[3]
    codec = Codec()
    prior = Prior(order)
    prior.load_state_dict(torch.load(state))
    prior.eval()
    kodak = sorted(Path("../shared/data/kodak").glob("*.png"))
    saved = {}  # (image, base quality) -> bytes saved
    items = dataset(cache)["kodak"]  # per image, qualities 1..3 in turn
    with torch.no_grad():
        for i, (quality, maps) in enumerate(items):
            new = sum(float(t.sum()) for t in prior.bits(*batch(maps)))
            saved[(kodak[i // 3].name, quality)] = (code_length(codec.model.prior, *maps)[0] - new) / 8
    runs = {c["name"]: c for c in json.loads(RESULTS.read_text())["codecs"]}
    curves: dict[str, dict[str, list]] = {name: defaultdict(list) for name in ("aec", "new", "avif")}
    for row in runs["aec"]["per_image"]:
        half_base_quality = codec.model.quality_plan(row["quality"])[1].half_base_quality
        size = row["num_bytes"] - saved[(row["image"], half_base_quality)]
        curves["aec"][row["image"]].append((row["bpp"], row["psnr"]))
        curves["new"][row["image"]].append((row["bpp"] * size / row["num_bytes"], row["psnr"]))
    for row in runs["avif"]["per_image"]:
        curves["avif"][row["image"]].append((row["bpp"], row["psnr"]))

    def bd(anchor: str, test: str, images: tuple[str, ...]) -> str:
        values, lows, highs = [], [], []
        for image in images:
            a, t = np.array(sorted(curves[anchor][image])), np.array(sorted(curves[test][image]))
            values.append(bd_rate(a[:, 0], a[:, 1], t[:, 0], t[:, 1]))
            low, high = shared_range(a[:, 1], t[:, 1])
            lows, highs = lows + [low], highs + [high]
        spread = f"per image {min(values):+.1f} to {max(values):+.1f}"
        return f"{np.mean(values):+.2f}% ({spread}; {min(lows):.1f}-{max(highs):.1f} dB)"

    every = tuple(sorted(curves["aec"]))
    for label, images in (("Kodak 24", every), ("the six", SIX)):
        print(
            f"{label}, mean of per-image BD-rates: new vs shipped {bd('aec', 'new', images)}; "
            f"shipped vs AVIF {bd('avif', 'aec', images)}; new vs AVIF {bd('avif', 'new', images)}"
        )
    low = [
        saved[(image, 1)]
        / next(r["num_bytes"] for r in runs["aec"]["per_image"] if r["image"] == image and r["quality"] == 1)
        for image in every
    ]
    print(f"quality 1: {np.mean(low):.2%} of the file saved on average ({min(low):.2%}-{max(low):.2%})")


if __name__ == "__main__":
    main()
