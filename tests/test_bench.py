"""The RD benchmark: codecs under test, datasets, runner, results JSON, report and command line."""

import io
import json
import math
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
import torch
from conftest import shared_path
from matplotlib.backends.backend_agg import FigureCanvasAgg
from PIL import Image, JpegImagePlugin
from tqdm import tqdm

from aecodec.bench import runner, threads
from aecodec.bench.anchors import load_anchors
from aecodec.bench.baselines import AecAdapter, CodecUnavailable, CodecUnderTest, PillowCodec, get_codec
from aecodec.bench.bdrate import bd_rate
from aecodec.bench.cli import main
from aecodec.bench.crops import crop_grid
from aecodec.bench.curves import RDCurve
from aecodec.bench.datasets import DatasetImage, center_crop, load_dataset
from aecodec.bench.merge import load_run, merge_runs
from aecodec.bench.metrics import as_rgb_array
from aecodec.bench.plots import is_ours
from aecodec.bench.report import (
    ReportInputs,
    bd_table,
    dataset_name,
    per_image_table,
    references,
    window_table,
    write_report,
)
from aecodec.bench.results_json import results_document, write_results
from aecodec.bench.runner import BenchRun, CodecResult, ImageResult, measure, run_benchmark
from aecodec.codec.images import list_images
from aecodec.codec.options import DEFAULT_EFFORT
from aecodec.errors import InputError
from aecodec.models.manifest import default_model_name


class FakeAecCodec:
    """Stands in for aecodec.codec.api.Codec: three qualities coded as 4:4:4 JPEG, decoded as PIL."""

    qualities = (1, 2, 3)
    jpeg_quality: ClassVar[dict[int, int]] = {1: 15, 2: 45, 3: 85}

    def compress(self, img: Image.Image, quality: int = 2, tune: str = "psnr", effort: int = DEFAULT_EFFORT) -> bytes:
        assert tune in ("psnr", "ms-ssim") and effort == DEFAULT_EFFORT
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=self.jpeg_quality[quality], subsampling=0)
        return buf.getvalue()

    def decompress(self, data: bytes) -> Image.Image:
        return Image.open(io.BytesIO(data))


def synthetic(name: str, height: int = 48, width: int = 64, seed: int = 0) -> DatasetImage:
    """Smooth gradients plus mild noise: content lossy codecs handle like a photo."""
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([4 * x, 5 * y, 2 * (x + y)], axis=2)
    noise = np.random.default_rng(seed).normal(0, 3, base.shape)
    return DatasetImage(name, np.clip(base + noise, 0, 255).astype(np.uint8))


@pytest.fixture(scope="module")
def kodak_two() -> list[DatasetImage]:
    return load_dataset(shared_path("data", "kodak"), limit=2)


def test_jpeg_follows_the_anchor_settings() -> None:
    jpeg = get_codec("jpeg")
    assert jpeg.qualities == list(range(5, 100, 5))
    with Image.open(io.BytesIO(jpeg.encode(Image.fromarray(synthetic("a").pixels), 50))) as img:
        assert JpegImagePlugin.get_sampling(img) == 2  # 4:2:0
        assert "progressive" not in img.info


def test_webp_also_runs_below_quality_5_to_reach_low_psnr() -> None:
    webp, image = get_codec("webp"), synthetic("a")
    assert webp.qualities == [0, 2, *range(5, 100, 5)]
    lowest, fifth = measure(webp, image, 0), measure(webp, image, 5)
    assert lowest.num_bytes < fifth.num_bytes and lowest.psnr < fifth.psnr


@pytest.mark.parametrize("name", ["jpeg", "webp", "avif", "jxl"])
def test_classic_codecs_round_trip(name: str) -> None:
    try:
        codec = get_codec(name)
    except CodecUnavailable as exc:
        pytest.skip(str(exc))
    image = synthetic("a")
    result = measure(codec, image, 90)
    assert result.bpp == 8 * result.num_bytes / (48 * 64)
    assert 15 < result.psnr < 100


def test_unavailable_codecs_raise_codec_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pillow_jxl", None)
    monkeypatch.setitem(sys.modules, "aecodec.codec.api", None)
    for name in ("jxl", "aec", "aec:big"):
        with pytest.raises(CodecUnavailable, match=name):
            get_codec(name)
    with pytest.raises(ValueError, match="unknown codec"):
        get_codec("bpg")


def test_aec_adapter_uses_the_codec_api() -> None:
    adapter = AecAdapter(FakeAecCodec())
    assert adapter.name == "aec" and adapter.qualities == [1, 2, 3]
    decoded = adapter.decode(adapter.encode(Image.fromarray(synthetic("a").pixels), 3))
    assert decoded.mode == "RGB" and decoded.size == (64, 48)


@pytest.mark.parametrize(
    ("name", "tune"), [("aec", "psnr"), ("aec@ms-ssim", "ms-ssim"), ("aec:vqvae2-base@ms-ssim", "ms-ssim")]
)
def test_aec_names_pick_model_and_tune(name: str, tune: str) -> None:
    codec = get_codec(name)
    assert codec.name == name and codec.tune == tune
    assert codec.codec.model.name == ("vqvae2-base" if ":" in name else default_model_name())
    assert f"model {codec.codec.model.name} (sha256 {codec.codec.model.digest.hex()}...)" in codec.description


def test_aec_encodes_on_the_device_asked_for_and_refuses_one_it_cannot_use(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    assert get_codec("aec@effort=5", device="cpu").codec.device.type == "cpu"
    with pytest.raises(InputError, match="not usable"):
        get_codec("aec", device="cuda:99")
    kodak = shared_path("data", "kodak")
    assert main(["--dataset", str(kodak), "--codecs", "jpeg,aec", "--device", "cuda:99", "--limit", "1"]) == 2
    assert "cuda:99" in capsys.readouterr().err


def test_unknown_tune_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown tune"):
        get_codec("aec@butteraugli")


def test_dataset_listing_and_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not found"):
        list_images(tmp_path / "missing")
    with pytest.raises(InputError, match="no images"):
        list_images(tmp_path)
    Image.fromarray(synthetic("g").pixels[:, :, 0]).save(tmp_path / "b.png")
    Image.fromarray(synthetic("c").pixels).save(tmp_path / "a.ppm")
    (tmp_path / "notes.txt").write_text("not an image")
    assert [p.name for p in list_images(tmp_path)] == ["a.ppm", "b.png"]
    images = load_dataset(tmp_path, limit=1)
    assert len(images) == 1 and images[0].pixels.shape == (48, 64, 3)
    assert load_dataset(tmp_path)[1].pixels.dtype == np.uint8


def test_runner_means_are_over_per_image_values() -> None:
    images = [synthetic("a", seed=1), synthetic("b", 40, 56, seed=2)]
    run = run_benchmark([AecAdapter(FakeAecCodec())], images, "synthetic", repeats=2, progress=False)
    result = run.codecs[0]
    assert run.repeats == 2 and run.cpu_count == os.cpu_count() and run.torch_threads >= 1
    assert [(r.quality, r.image) for r in result.images][:3] == [(1, "a"), (1, "b"), (2, "a")]
    for q, mean_bpp, mean_psnr in zip(result.qualities, result.mean("bpp"), result.mean("psnr")):
        rows = result.at_quality(q)
        assert mean_bpp == pytest.approx(sum(8 * r.num_bytes / r.num_pixels for r in rows) / 2)
        assert mean_psnr == pytest.approx(sum(r.psnr for r in rows) / 2)
    assert all(math.isnan(m) for m in result.mean("ms_ssim"))  # below MS-SSIM's minimum size
    assert result.megapixels_per_second("encode_s") > 0


def test_results_json_is_readable_by_compressai_plot(tmp_path: Path, kodak_two: list[DatasetImage]) -> None:
    plot = pytest.importorskip("compressai.utils.plot.__main__")
    run = run_benchmark(
        [AecAdapter(FakeAecCodec(), name="aec:fake")],
        kodak_two[:1],
        "kodak",
        progress=False,
        crop_images=["kodim01.png"],
    )
    write_report(run, ReportInputs(kodak_two[0], crop_targets=[0.5]), tmp_path)
    for metric in ("psnr", "ms-ssim"):
        parsed = plot.parse_json_file(tmp_path / "compressai" / "aec-fake.json", metric)
        assert parsed["name"] == "aec:fake" and len(parsed["xs"]) == len(parsed["ys"]) == 3
    full = json.loads((tmp_path / "results.json").read_text())
    assert set(full) == {"meta", "codecs"} and full["meta"]["images"] == ["kodim01.png"]
    entry = full["codecs"][0]
    assert set(entry["results"]) >= {"quality", "bpp", "psnr-rgb", "ms-ssim-rgb", "ms-ssim-db", "encoding_time"}
    assert len(entry["per_image"]) == 3 and entry["per_image"][0]["image"] == "kodim01.png"


def test_two_image_smoke_run_writes_every_output(tmp_path: Path, kodak_two: list[DatasetImage]) -> None:
    jpeg = get_codec("jpeg")
    jpeg.qualities = [10, 30, 60, 90]
    codecs = [jpeg, AecAdapter(FakeAecCodec())]
    run = run_benchmark(codecs, kodak_two, "kodak", progress=False, crop_images=[kodak_two[1].name])
    inputs = ReportInputs(kodak_two[1], anchors=load_anchors(shared_path("anchors", "kodak_published.json")))
    written = write_report(run, inputs, tmp_path)
    names = {p.relative_to(tmp_path).as_posix() for p in written}
    assert names == {
        "results.json",
        "compressai/jpeg.json",
        "compressai/aec.json",
        "rd_psnr.png",
        "rd_msssim.png",
        "crops.png",
        "report.md",
    }
    assert all(p.stat().st_size > 0 for p in written)
    report = (tmp_path / "report.md").read_text()
    assert "| vs jpeg | vs aec |" in report and "JPEG (published)" in report and "MP/s" in report
    assert "## PSNR (RGB) over 0.25-1.5 bpp" in report and " dB |" in report
    assert report.count("% over ") >= 2 * 2 * 2 and "Our codec: `aec` (aecodec)" in report


def one_image_jpeg_run(out: Path) -> list[str]:
    """Command-line arguments of a quick run: one Kodak image, JPEG at two qualities, into `out`."""
    return ["--dataset", str(shared_path("data", "kodak")), "--codecs", "jpeg", "--limit", "1",
            "--qualities", "20,80", "--crop-bpp", "1.0", "--out", str(out), "--no-progress"]  # fmt: skip


def test_command_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    kodak = shared_path("data", "kodak")
    out = tmp_path / "out"
    assert main(one_image_jpeg_run(out)) == 0
    assert (out / "report.md").exists() and str(out / "crops.png") in capsys.readouterr().out
    assert main(["--dataset", str(tmp_path / "none"), "--codecs", "jpeg"]) == 2
    assert main(["--dataset", str(kodak), "--codecs", "bpg"]) == 2
    assert "unknown codec" in capsys.readouterr().err


def test_report_tables_give_intervals_saturation_and_window_means() -> None:
    # Reference: Q = 30 + 10 ln R at e^-1, 1 and e bpp (collinear in ln R: PCHIP reproduces the line).
    lns = [-1.0, 0.0, 1.0]
    rates = [math.exp(x) for x in lns]
    ref = RDCurve("jpeg", rates, [30 + 10 * x for x in lns])
    flat = RDCurve("flat", rates, [20.0, 30.0, 30.08])  # its last step gains 0.08 dB over 1.7 bpp
    bd = bd_table([flat, ref], [ref], "psnr")
    assert bd[0] == "| codec | saturates from | vs jpeg |"
    assert bd[2].startswith("| flat | 1.00 bpp (30.00 dB) | ") and bd[2].endswith(" over 20.0-30.1 dB † |")
    assert bd[3] == "| jpeg | - | +0.0% over 20.0-40.0 dB |"
    # Window [e^-1, e^2] bpp, ln R in [-1, 2]: the reference integrates to 60 on [-1, 1], then is held at
    # 40 dB on [1, 2]: mean 100 / 3. "stops" is the line on [-1, 0] only (25), held at 30 dB on [0, 2]:
    # mean 85 / 3, 5 dB below.
    stops = RDCurve("stops", rates[:2], [20.0, 30.0])
    window = window_table([stops, ref], [ref], "psnr", (math.exp(-1), math.exp(2)))
    assert window[0] == "| codec | measured bpp | held flat over bpp | mean dB | vs jpeg |"
    assert window[2] == "| stops | 0.368-1.000 | 1.00-7.39 | 28.33 | -5.00 dB |"
    assert window[3] == "| jpeg | 0.368-2.718 | 2.72-7.39 | 33.33 | +0.00 dB |"


def test_crop_grid_titles_do_not_cover_the_images(kodak_two: list[DatasetImage]) -> None:
    jpeg = get_codec("jpeg")
    jpeg.qualities = [10, 40]
    run = run_benchmark([jpeg, jpeg], kodak_two[:1], "kodak", progress=False, crop_images=[kodak_two[0].name])
    fig = crop_grid(run.codecs, kodak_two[0], [0.25, 0.5, 1.0])
    renderer = FigureCanvasAgg(fig).get_renderer()
    fig.draw(renderer)
    axes = fig.get_axes()
    for ax in axes:
        title = ax.title.get_window_extent(renderer)
        assert not any(title.overlaps(other.get_window_extent(renderer)) for other in axes if other is not ax)


def test_crop_grid_shows_the_benchmarks_own_decodes_without_encoding_again(kodak_two: list[DatasetImage]) -> None:
    # At a top effort an encode takes minutes: the grid must reuse what the benchmark decoded.
    jpeg = get_codec("jpeg")
    jpeg.qualities = [10, 40]
    encodes = []
    encode = jpeg.encode
    jpeg.encode = lambda image, quality: encodes.append(quality) or encode(image, quality)
    image = kodak_two[0]
    run = run_benchmark([jpeg], kodak_two, "kodak", progress=False, crop_images=[image.name])
    assert sorted(run.codecs[0].crops) == [(image.name, 10), (image.name, 40)]  # the crop image only
    decoded = as_rgb_array(jpeg.decode(encode(Image.fromarray(image.pixels), 40)))
    assert np.array_equal(run.codecs[0].crops[(image.name, 40)], center_crop(decoded))
    coded = len(encodes)
    crop_grid(run.codecs, image, [0.25, 5.0])
    assert len(encodes) == coded
    with pytest.raises(ValueError, match="kept no decode"):
        crop_grid(run.codecs, kodak_two[1], [0.25])


def test_progress_advances_with_each_codecs_measured_time(monkeypatch: pytest.MonkeyPatch) -> None:
    # A fake clock: "slow" takes 9 s per step, "fast" 1 s, 10 s an image. From the second image on, the
    # bar advances in proportion to time, so its rate, and the ETA tqdm derives from it, hold steady.
    clock = [0.0]
    cost = {"slow": 9.0, "fast": 1.0}

    def fake_measure(
        codec: CodecUnderTest, image: DatasetImage, quality: int, repeats: int, crops: dict | None
    ) -> ImageResult:
        clock[0] += cost[codec.name]
        return ImageResult(image.name, quality, 1, 1.0, 30.0, 0.9, 0.0, 0.0, 1)

    progress: list[tuple[float, float]] = []

    class RecordingBar(tqdm):
        def update(self, n: float = 1) -> None:
            super().update(n)
            progress.append((clock[0], self.n))

    monkeypatch.setattr(runner, "measure", fake_measure)
    monkeypatch.setattr(runner.time, "perf_counter", lambda: clock[0])
    monkeypatch.setattr(runner, "tqdm", RecordingBar)
    codecs = [PillowCodec(name, "JPEG", name, qualities=[1]) for name in cost]
    images = [synthetic(name) for name in "abc"]
    run = run_benchmark(codecs, images, "synthetic")
    later = [(t, n) for t, n in progress if t > 10.0]  # the second and third images
    assert [n for _, n in later] == pytest.approx([(t - 10.0) / 10.0 + 1.0 for t, _ in later])
    assert progress[-1] == (30.0, 3.0) and [r.image for r in run.codecs[0].images] == ["a", "b", "c"]


def test_usable_cores_follow_a_cgroup_quota(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    affinity = len(os.sched_getaffinity(0))
    monkeypatch.setattr(threads, "CGROUP_CPU_MAX", tmp_path / "missing")
    assert threads.usable_cores() == affinity
    quota = tmp_path / "cpu.max"
    monkeypatch.setattr(threads, "CGROUP_CPU_MAX", quota)
    quota.write_text("max 100000\n")
    assert threads.usable_cores() == affinity
    quota.write_text("150000 100000\n")  # one and a half CPUs: one thread, not two half-starved ones
    assert threads.usable_cores() == 1


def test_use_threads_sets_torch_and_the_plugins_never_above_the_cores() -> None:
    avif = pytest.importorskip("PIL.AvifImagePlugin")
    before = torch.get_num_threads(), avif.DEFAULT_MAX_THREADS
    try:
        assert threads.use_threads(1) == 1 and torch.get_num_threads() == 1 and avif.DEFAULT_MAX_THREADS == 1
        assert threads.use_threads(10_000) == threads.usable_cores() == torch.get_num_threads()
    finally:
        torch.set_num_threads(before[0])
        avif.DEFAULT_MAX_THREADS = before[1]


def test_encoders_get_their_thread_option() -> None:
    saved = {}
    codec = PillowCodec("webp", "WEBP", "webp", threads_option="method", threads=2)  # any option Pillow takes
    image = Image.fromarray(synthetic("a").pixels)
    image.save = lambda buf, **options: saved.update(options)  # type: ignore[method-assign]
    codec.encode(image, 50)
    assert saved == {"format": "WEBP", "quality": 50, "method": 2}
    assert get_codec("jpeg", threads=3).threads == 3


def test_threads_option_through_a_subprocess(tmp_path: Path) -> None:
    args = [*one_image_jpeg_run(tmp_path), "--threads", "10000"]
    done = subprocess.run(
        [sys.executable, "-m", "aecodec.bench", *args],
        capture_output=True,
        text=True,
        check=True,
        env=os.environ | {"PYTHONPATH": str(Path(__file__).parent.parent)},
    )
    cores = threads.usable_cores()
    assert f"using {cores} threads" in done.stderr
    assert f"torch threads {cores} " in (tmp_path / "report.md").read_text()


def fake_run(images: Sequence[str], dataset: str = "set", qualities: Sequence[int] = (1, 2, 3)) -> BenchRun:
    """A finished run of three codecs, without encoding: log-linear curves shifted by codec and by image ("a", "b",
    ...), so that an image has the same results in any run."""
    codecs = []
    for shift, name in enumerate(("aec@effort=5", "aec", "avif")):
        rows = [
            ImageResult(
                image, q, 100 * q, 0.1 * q * (1 + k), 30 + 5 * math.log(q) - shift * (1 + k) / 2, math.nan, 1, 0.1, 8000
            )
            for q in qualities
            for image in images
            for k in [ord(image) - ord("a")]
        ]
        codecs.append(CodecResult(name, f"{name} codec", list(qualities), rows))
    return BenchRun(dataset, list(images), 1, 1, 2, codecs)


def test_merged_runs_report_as_one_run_over_all_their_images(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    write_results(fake_run(["a", "b"], "first"), tmp_path / "first")
    write_results(fake_run(["c"], "second"), tmp_path / "second")
    merged = merge_runs([load_run(tmp_path / "first"), load_run(tmp_path / "second" / "results.json")])
    whole = fake_run(["a", "b", "c"])
    assert merged.image_names == ["a", "b", "c"] and merged.dataset == "first + second"
    for joined, one_run in zip(merged.codecs, whole.codecs, strict=True):
        assert joined.curve().bpp == pytest.approx(one_run.curve().bpp)
        assert joined.curve().psnr == pytest.approx(one_run.curve().psnr)
        assert [(r.quality, r.image) for r in joined.images] == [(r.quality, r.image) for r in one_run.images]
    out = tmp_path / "out"
    runs = [str(tmp_path / "first"), str(tmp_path / "second")]
    assert main(["--merge", *runs, "--references", "aec,avif,bpg", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "crops.png" not in printed and str(out / "report.md") in printed
    report = (out / "report.md").read_text()
    assert "| codec | saturates from | vs aec | vs avif |" in report and "Crops" not in report
    assert "| image | aec@effort=5 vs aec | aec@effort=5 vs avif | aec vs avif |" in report
    assert load_run(out).image_names == ["a", "b", "c"] and dataset_name(merged.dataset) == "first, second"


def test_runs_that_cannot_be_joined_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    run = fake_run(["a"])
    with pytest.raises(InputError, match="more than one run: a"):
        merge_runs([run, run])
    with pytest.raises(InputError, match="differ in codecs"):
        merge_runs([run, fake_run(["b"], qualities=(1, 2))])
    with pytest.raises(InputError, match="no benchmark runs"):
        merge_runs([])
    document = results_document(run)
    document["codecs"][0]["per_image"].pop()
    broken = {
        "truncated.json": '{"meta": {',
        "not-a-run.json": '{"codecs": []}',
        "missing-row.json": json.dumps(document),
        "bad-row.json": json.dumps(document).replace('"image": "a"', '"image": 3', 1),
    }
    for name, text in broken.items():
        (tmp_path / name).write_text(text)
        with pytest.raises(InputError):
            load_run(tmp_path / name)
    with pytest.raises(InputError, match="cannot read"):
        load_run(tmp_path / "absent.json")
    assert main(["--merge", str(tmp_path / "truncated.json"), "--out", str(tmp_path / "out")]) == 2
    assert main(["--merge", str(tmp_path / "missing-row.json"), "--crop-image", "a", "--out", str(tmp_path)]) == 2
    errors = capsys.readouterr().err.splitlines()
    assert len(errors) == 2 and all(line.startswith("aecodec bench: error: ") for line in errors)


def test_per_image_table_gives_each_images_bd_rate_and_their_mean() -> None:
    run = fake_run(["a", "b", "c"])
    ours, default, avif = run.codecs

    def bd(reference: CodecResult, image: str) -> float:
        test, ref = ours.image_curve(image), reference.image_curve(image)
        return bd_rate(ref.bpp, ref.psnr, test.bpp, test.psnr)

    table = per_image_table(run.codecs, run.image_names, [default, avif])
    assert table[0] == "| image | aec@effort=5 vs aec | aec@effort=5 vs avif | aec vs avif |"
    assert table[2].startswith(f"| a | {bd(default, 'a'):+.2f}% over 30.0-35.0 dB | {bd(avif, 'a'):+.2f}% over ")
    values = [bd(avif, image) for image in run.image_names]
    assert len(set(values)) == 3 and f"**{sum(values) / 3:+.2f}%** (3 images)" in table[-1]


def test_references_are_measured_curves_else_published_ones_by_name() -> None:
    measured = [RDCurve("aec", [1, 2], [30, 33]), RDCurve("avif", [1, 2], [31, 34])]
    published = [RDCurve("JPEG", [1, 2], [28, 31], published=True), RDCurve("avif", [1, 2], [0, 1], published=True)]
    found = references(measured, published, ["jpeg", "avif", "bpg"])
    assert [(c.name, c.published) for c in found] == [("JPEG", True), ("avif", False)]
    assert [c.name for c in references(measured, published)] == ["JPEG", "aec"]
    assert is_ours("aec@effort=5") and is_ours("aec:big") and is_ours("aec") and not is_ours("avif")
