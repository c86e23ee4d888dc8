"""Benchmark results as JSON, in the shape CompressAI's tools read, plus our per-image data.

`results.json` holds `{"meta": {...}, "codecs": [entry, ...]}`. Each entry is a CompressAI results
document (`name`, `description`, `results` with `bpp`, `psnr-rgb`, `ms-ssim-rgb` lists per quality)
with extra keys CompressAI ignores: `results.quality`, `results.ms-ssim-db`, the mean
`encoding_time`/`decoding_time` per image in seconds, and `per_image` (every ImageResult).
`compressai/<codec>.json` repeats each entry without `per_image`, one file per codec as
`python -m compressai.utils.plot -f DIR/compressai/*.json [-m ms-ssim]` expects.
Undefined values (MS-SSIM of small images) are written as null; PSNR is capped at 100 dB.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict
from pathlib import Path
from typing import Any

from aecodec.bench.metrics import DB_CAP
from aecodec.bench.runner import BenchRun, CodecResult
from aecodec.codec.options import MS_SSIM_MIN_SIDE


def compressai_entry(result: CodecResult) -> dict[str, Any]:
    """One codec's mean curve as a CompressAI results document (with our extra keys)."""
    curve = result.curve()
    return {
        "name": result.name,
        "description": result.description,
        "results": {
            "quality": result.qualities,
            "bpp": curve.bpp,
            "psnr-rgb": curve.psnr,
            "ms-ssim-rgb": curve.ms_ssim,
            "ms-ssim-db": curve.ms_ssim_db,
            "encoding_time": result.mean("encode_s"),
            "decoding_time": result.mean("decode_s"),
        },
    }


def results_document(run: BenchRun) -> dict[str, Any]:
    """The whole run: machine/dataset facts and, per codec, the CompressAI entry plus per-image rows."""
    meta = {
        "dataset": run.dataset,
        "images": run.image_names,
        "repeats": run.repeats,
        "torch_threads": run.torch_threads,
        "cpu_count": run.cpu_count,
        "notes": f"PSNR per image capped at {DB_CAP:g} dB; MS-SSIM null below {MS_SSIM_MIN_SIDE} px; "
        "times are medians over `repeats` runs, in seconds.",
    }
    codecs = [compressai_entry(r) | {"per_image": [asdict(i) for i in r.images]} for r in run.codecs]
    return {"meta": meta, "codecs": codecs}


def _strict(value: Any) -> Any:
    """Replace nan by None (recursively) so the output is standard JSON."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _strict(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_strict(v) for v in value]
    return value


def _dump(doc: dict[str, Any], path: Path) -> Path:
    path.write_text(json.dumps(_strict(doc), indent=1, allow_nan=False) + "\n")
    return path


def file_stem(name: str) -> str:
    """A file-name-safe version of a codec name ("aec:big" -> "aec-big")."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name)


def write_results(run: BenchRun, out_dir: Path) -> list[Path]:
    """Write results.json and compressai/<codec>.json under `out_dir`; return the paths written."""
    per_codec = out_dir / "compressai"
    per_codec.mkdir(parents=True, exist_ok=True)
    written = [_dump(results_document(run), out_dir / "results.json")]
    written += [_dump(compressai_entry(r), per_codec / f"{file_stem(r.name)}.json") for r in run.codecs]
    return written
