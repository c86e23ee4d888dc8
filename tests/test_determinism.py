"""Exact decoding across processes and thread counts: the integer prior never depends on either."""

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np

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


def test_integer_prior_is_thread_independent(model) -> None:
    import torch

    from aecodec.models.integer_prior import traverse

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
        assert all(np.array_equal(a, b) for a, b in zip(tables(1), tables(2)))
    finally:
        torch.set_num_threads(previous)


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
