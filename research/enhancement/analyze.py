"""RD table and BD-rates from results/baselines.jsonl and results/results.jsonl.

python -m research.enhancement.analyze TAG [TAG...]: each TAG is a set of enhancement runs (one operating point per
(base_q, lam) pair, averaged over images that have it). Curves are averaged over images per setting.
"""

import collections
import json
import sys
from pathlib import Path

import numpy as np

from aecodec.bench.bdrate import bd_rate, shared_range

FULL_PIXELS = 768 * 512
RESULTS = Path(__file__).resolve().parent / "results"


def load(path):
    with open(path) as f:
        return [json.loads(line) for line in f]


def curve(points):
    """Per setting: mean bpp, mean PSNR over images; sorted by bpp."""
    by = collections.defaultdict(list)
    for key, bpp, psnr in points:
        by[key].append((bpp, psnr))
    out = sorted((np.mean([b for b, _ in v]), np.mean([p for _, p in v]), key, len(v)) for key, v in by.items())
    return out


def hull(c):
    """Keep points that are not dominated (higher rate must give higher PSNR)."""
    out = []
    for p in c:
        if not out or p[1] > out[-1][1]:
            out.append(p)
    return out


def bd(anchor, test):
    """BD-rate of `test` against `anchor` (percent) and the PSNR interval it averages over."""
    ra, qa = [a[0] for a in anchor], [a[1] for a in anchor]
    rt, qt = [t[0] for t in test], [t[1] for t in test]
    try:
        return bd_rate(ra, qa, rt, qt), shared_range(qa, qt)
    except ValueError as e:
        return float("nan"), str(e)


def main(tags, amortize=False, only=None):
    base = load(RESULTS / "baselines.jsonl")
    res = [r for r in load(RESULTS / "results.jsonl") if r["tag"] in tags and (not only or r["image"] in only)]
    images = sorted({r["image"] for r in res})
    curves = {}
    for codec in ("jpeg", "webp", "avif", "base"):
        curves[codec] = curve(
            [(b["q"], b["bpp"], b["psnr"]) for b in base if b["codec"] == codec and b["image"] in images]
        )
    groups = collections.defaultdict(list)
    for r in res:
        kind = "enh" if r["base_q"] else "nobase"
        n = r["h"] * r["w"]
        bpp = r["bpp"] - (r["bits_params"] * (1 - n / FULL_PIXELS) / n if amortize else 0)
        groups[kind].append(((r["base_q"], r["lam"]), bpp, r["psnr"]))
    for kind, pts in groups.items():
        full = curve(pts)
        n_img = len({r["image"] for r in res if bool(r["base_q"]) == (kind == "enh")})
        full = [p for p in full if p[3] == n_img]
        curves[kind] = hull(full)
        print(f"\n{kind} points (images={len(images)}):")
        for b, p, key, n in full:
            mark = "*" if (b, p, key, n) in curves[kind] else ""
            print(f"  q={key[0]:>2} lam={key[1]:.0e}  bpp={b:.3f}  psnr={p:.2f}  {mark}")
    print("\nimages:", images, "amortized params:" if amortize else "")
    for codec in ("jpeg", "webp", "avif", "base"):
        c = [p for p in curves[codec] if 0.05 < p[0] < 2.0]
        print(codec, " ".join(f"{b:.2f}/{p:.1f}" for b, p, *_ in c))
    for test in [k for k in ("base", "enh", "nobase") if k in curves]:
        for anchor in ("jpeg", "webp", "avif"):
            v, rng = bd(curves[anchor], curves[test])
            print(f"BD-rate {test} vs {anchor}: {v:+.1f}%  psnr range {rng}")
    # per image, enh vs avif
    for kind in ("enh", "nobase"):
        per = []
        for im in images:
            a = [(b["bpp"], b["psnr"]) for b in base if b["codec"] == "avif" and b["image"] == im]
            t = hull(
                sorted((r["bpp"], r["psnr"]) for r in res if r["image"] == im and bool(r["base_q"]) == (kind == "enh"))
            )
            if len(t) >= 2:
                per.append((im, round(bd(a, t)[0], 1)))
        print(kind, "per-image BD vs avif:", per)


if __name__ == "__main__":
    only = [a.split("=")[1].split(",") for a in sys.argv[1:] if a.startswith("--images=")]
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    main(args, "--amortize" in sys.argv, only[0] if only else None)
