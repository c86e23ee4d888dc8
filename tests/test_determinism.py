"""Exact decoding across processes and thread counts: the integer prior never depends on either."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from aecodec.codec.api import thread_independent
from aecodec.codec.tiling import to_tensor
from aecodec.models.manifest import default_model_name
from aecodec.models.model_files import shipped_model
from aecodec.models.prior import pass_masks

SCRIPT = textwrap.dedent(
    """
    import sys, hashlib, numpy as np, torch
    torch.set_num_threads(int(sys.argv[1]))
    from aecodec.codec.api import Codec
    from aecodec.models.model_files import load_model_file
    from aecodec.bitstream.format import unpack
    codec = Codec(load_model_file(sys.argv[2]), tile_size=128, overlap=8)
    mode, path = sys.argv[3], sys.argv[4]
    if mode == "encode":
        pixels = np.random.default_rng(7).integers(0, 256, (150, 203, 3), dtype=np.uint8)
        open(path, "wb").write(codec.compress(pixels, 3))
    else:
        digest = hashlib.sha256()
        for _, tile in codec.tile_indices(unpack(open(path, "rb").read())):
            for idx in tile.top + tile.bottom:
                digest.update(idx.numpy().astype("<u2").tobytes())
        print(digest.hexdigest())
    """
)


def run(threads: int, model_file: Path, mode: str, path: Path) -> str:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(threads), str(model_file), mode, str(path)],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).parent.parent,
    )
    return result.stdout.strip()


def test_encode_with_one_thread_count_decode_with_another(model_file: Path, tmp_path: Path) -> None:
    one, two = tmp_path / "one.aec", tmp_path / "two.aec"
    run(1, model_file, "encode", one)
    run(2, model_file, "encode", two)
    assert one.read_bytes() == two.read_bytes()
    decoded = {run(threads, model_file, "decode", one) for threads in (1, 2, 3)}
    assert len(decoded) == 1 and len(decoded.pop()) == 64


def test_exact_matmul_equals_integer_matmul_on_both_sides_of_the_float64_bound() -> None:
    from aecodec.models.integer_prior import FLOAT64_EXACT, exact_matmul

    generator = torch.Generator().manual_seed(3)
    weight = torch.randint(-128, 128, (48, 576), generator=generator)
    for limit in (128, 1 << 40):  # int8-sized activations take the float64 path; huge ones the int64 one
        rows = torch.randint(-limit, limit, (300, 576), generator=generator)
        assert (limit * int(weight.abs().sum(1).max()) < FLOAT64_EXACT) == (limit == 128)
        assert torch.equal(exact_matmul(rows, weight), rows @ weight.t())
    assert exact_matmul(rows[:0], weight).shape == (0, 48)


@pytest.mark.parametrize("fixture", ["model", "grid_model"])
def test_integer_prior_is_thread_independent(fixture: str, request: pytest.FixtureRequest) -> None:
    """Every pass's frequency tables (two per stage for the checkerboard, five for a grid of depth 2)."""
    from aecodec.models.integer_prior import traverse

    model = request.getfixturevalue(fixture)

    def tables(threads: int) -> list[np.ndarray]:
        torch.set_num_threads(threads)
        out = []
        generator = torch.Generator().manual_seed(0)

        def record(level, stage, positions, freqs):
            out.append(freqs.numpy().copy())
            return torch.randint(0, freqs.shape[1], (int(positions.sum()),), generator=generator)

        traverse(model.prior, (12, 10), (2, 3), record)
        return out

    previous = torch.get_num_threads()
    try:
        one, two = tables(1), tables(2)
    finally:
        torch.set_num_threads(previous)
    assert len(one) == len(pass_masks(model.prior.order, 1, 1)) * (2 + 3)
    assert all(np.array_equal(a, b) for a, b in zip(one, two, strict=True))


def test_gpu_encoded_file_decodes_on_cpu(model, tmp_path: Path) -> None:
    """Runs only where CUDA is present: the GPU's float analysis picks the indices, the CPU decodes them."""
    import pytest
    import torch

    from aecodec.bitstream.format import unpack
    from aecodec.codec.api import Codec

    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    pixels = np.random.default_rng(9).integers(0, 256, (90, 130, 3), dtype=np.uint8)
    gpu, cpu = Codec(model, tile_size=64, overlap=8, device="cuda"), Codec(model, tile_size=64, overlap=8)
    data = gpu.compress(pixels, 2)
    sent = gpu.analyze(pixels, 2)
    received = [tile for _, tile in cpu.tile_indices(unpack(data))]
    assert all(torch.equal(a, b) for s, r in zip(sent, received) for a, b in zip(s.top + s.bottom, r.top + r.bottom))
    assert np.array_equal(np.asarray(cpu.decompress(data)), np.asarray(cpu.decompress(data)))


def test_shipped_model_latents_do_not_depend_on_the_thread_count(kodak_dir: Path) -> None:
    """oneDNN changed the last bits of latents between 1 and 2 threads (flipping codeword ties in 6 of 12
    Kodak encodes); under thread_independent() a photo's bottom latent is bit-identical."""
    network = shipped_model(default_model_name()).network
    x = to_tensor(np.asarray(Image.open(kodak_dir / "kodim13.png").convert("RGB"))[:128, :128])
    previous = torch.get_num_threads()
    try:
        latents = []
        for threads in (1, 2):
            torch.set_num_threads(threads)
            with torch.no_grad(), thread_independent():
                latents.append(network.analyze_top(x, torch.tensor([10]))[1])
    finally:
        torch.set_num_threads(previous)
    assert torch.equal(*latents)


SHIPPED_SCRIPT = textwrap.dedent(
    """
    import sys, numpy as np
    from PIL import Image
    from aecodec.codec.api import Codec
    codec, (mode, source, out) = Codec(), sys.argv[1:]
    if mode == "encode":
        open(out, "wb").write(codec.compress(np.asarray(Image.open(source).convert("RGB"))[:128, :256], 10))
    else:
        np.save(out, np.asarray(codec.decompress(open(source, "rb").read())))
    """
)


def test_shipped_model_on_a_photo_is_thread_count_independent(kodak_dir: Path, tmp_path: Path) -> None:
    """Across processes with OMP_NUM_THREADS=1 and 2: the same file, decoded to the same pixels."""
    outputs = {}
    for threads in (1, 2):
        env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
        aec, png = tmp_path / f"{threads}.aec", tmp_path / f"{threads}.npy"
        for mode, source, out in (("encode", kodak_dir / "kodim13.png", aec), ("decode", tmp_path / "1.aec", png)):
            subprocess.run([sys.executable, "-c", SHIPPED_SCRIPT, mode, str(source), str(out)], env=env, check=True)
        outputs[threads] = aec.read_bytes(), np.load(png)
    assert outputs[1][0] == outputs[2][0]
    assert np.array_equal(outputs[1][1], outputs[2][1])


RESIDUAL_SCRIPT = textwrap.dedent(
    """
    import sys, hashlib, numpy as np
    from aecodec.bitstream.format import RESIDUAL, unpack
    from aecodec.codec.api import Codec
    from aecodec.codec.residual_coding import decode_residual
    from aecodec.models.model_files import load_model_file
    from aecodec.models.residual import blocks_shape
    codec = Codec(load_model_file(sys.argv[1]), tile_size=128, overlap=8)
    mode, path = sys.argv[2], sys.argv[3]
    if mode == "encode":
        pixels = np.random.default_rng(7).integers(0, 256, (150, 203, 3), dtype=np.uint8)
        open(path, "wb").write(codec.compress(pixels, codec.model.num_qualities))
    else:
        file = unpack(open(path, "rb").read())
        level = codec.model.quality_plan(file.header.quality)[1]
        shape = blocks_shape(file.header.width, file.header.height)
        values = decode_residual(codec.model.residual, level, file.chunk(RESIDUAL), shape)
        print(hashlib.sha256(values.astype("<i2").tobytes()).hexdigest())
    """
)


def test_residual_layer_is_exact_across_thread_counts(tmp_path: Path) -> None:
    from aecodec.testing import random_model_bytes, random_residual_layer, with_residual_layer

    model_file = tmp_path / "res.safetensors"
    model_file.write_bytes(
        with_residual_layer(random_model_bytes(), random_residual_layer([(3, 4.0)], 3, predict=True))
    )

    def run_with(threads: int, mode: str, path: Path) -> str:
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "OPENBLAS_NUM_THREADS": str(threads)}
        result = subprocess.run(
            [sys.executable, "-c", RESIDUAL_SCRIPT, str(model_file), mode, str(path)],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).parent.parent,
            env=env,
        )
        return result.stdout.strip()

    one, two = tmp_path / "one.aec", tmp_path / "two.aec"
    run_with(1, "encode", one)
    run_with(2, "encode", two)
    assert one.read_bytes() == two.read_bytes()
    decoded = {run_with(threads, "decode", one) for threads in (1, 2, 3)}
    assert len(decoded) == 1 and len(decoded.pop()) == 64
