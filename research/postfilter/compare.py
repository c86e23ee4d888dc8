"""Post-filters compared on the same files: BD-rate against the first, and against the bench's WebP and AVIF.

Run from the repository root: ``PYTHONPATH=. python research/postfilter/compare.py CACHE MODEL...``.
At effort 2 the file does not depend on the post-filter, so the default model's files of the
Kodak images and the four held-out photos (``photos`` 010/020/030/040), qualities 2-28 every
other, are coded and decoded without filter once (cached in CACHE, a pickle: about 10 minutes on
2 cores); each MODEL's post-filter is then applied to the same decodes. The peers' curves come from
``docs/bench/results.json`` and ``docs/bench/heldout/results.json`` (same images, real files). This
is how ``fit-postfilter --weighting psnr`` was chosen (README, Training your own model).
"""

import json
import os
import pickle
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from aecodec.bench.bdrate import bd_rate, shared_range
from aecodec.codec.api import Codec
from aecodec.models.model_files import resolve_model

SHARED = Path("../shared/data")
SETS = {
    "kodak": (sorted((SHARED / "kodak").glob("*.png")), "docs/bench/results.json"),
    "held": ([SHARED / "photos" / f"{n}.png" for n in ("010", "020", "030", "040")], "docs/bench/heldout/results.json"),
}
QUALITIES = range(2, 29, 2)


def rgb(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def unfiltered(cache: str) -> dict:
    """{(set, path, quality): (file bytes, unfiltered decode)}, computed once."""
    if os.path.exists(cache):
        return pickle.loads(Path(cache).read_bytes())
    codec, out = Codec(), {}
    for name, (paths, _) in SETS.items():
        for path in paths:
            for quality in QUALITIES:
                data = codec.compress(rgb(path), quality)
                out[(name, str(path), quality)] = (len(data), codec.decompress_unfiltered(data))
    Path(cache).write_bytes(pickle.dumps(out))
    return out


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return 10 * np.log10(255**2 / np.square(a.astype(float) - b).mean())


def curves(decodes: dict, model: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per set, the mean bpp and mean PSNR per quality with ``model``'s post-filter."""
    postfilter, points = resolve_model(model).postfilter, {}
    for (name, path, quality), (size, decoded) in decodes.items():
        x = rgb(Path(path))
        bpp = 8 * size / x.shape[0] / x.shape[1]
        points.setdefault(name, {}).setdefault(quality, []).append((bpp, psnr(postfilter.apply(decoded, quality), x)))
    return {
        name: tuple(np.array([np.mean(v[q], 0)[i] for q in sorted(v)]) for i in (0, 1)) for name, v in points.items()
    }


def main() -> None:
    decodes, models = unfiltered(sys.argv[1]), sys.argv[2:]
    first = curves(decodes, models[0])
    for model in models:
        mine, line = curves(decodes, model) if model != models[0] else first, model
        for name, (rate, quality) in mine.items():
            line += f" | {name}: vs {models[0]} {bd_rate(*first[name], rate, quality):+.2f}%"
            peers = {c["name"]: c["results"] for c in json.loads(Path(SETS[name][1]).read_text())["codecs"]}
            for peer in ("webp", "avif"):
                lo, hi = shared_range(peers[peer]["psnr-rgb"], quality)
                line += f", vs {peer} {bd_rate(peers[peer]['bpp'], peers[peer]['psnr-rgb'], rate, quality):+.2f}%"
                line += f" ({lo:.1f}-{hi:.1f} dB)"
        print(line, flush=True)


if __name__ == "__main__":
    main()
