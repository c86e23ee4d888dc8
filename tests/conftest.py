"""Shared fixtures: a tiny random model (as an object and as a file) and the Kodak folder."""

import os
from pathlib import Path

import pytest
import torch

from aecodec.bitstream.format import CORRECTION_FIELD, WIENER_FILTER, AecFile
from aecodec.codec.api import Codec
from aecodec.models.model_files import CodecModel, model_from_bytes
from aecodec.testing import random_model_bytes

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"


def without_corrections(file: AecFile) -> AecFile:
    """``file`` without the corrections fitted to its decode (Wiener filter, correction field), which the decoder
    applies after everything else: what the post-filter and base tests compare."""
    return file.without_chunk(WIENER_FILTER).without_chunk(CORRECTION_FIELD)


def shared_path(*parts: str) -> Path:
    """A path in ../shared; in CI a missing one fails loudly, elsewhere the test is skipped."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        message = f"{path} is missing: tests that need real photos expect ../shared beside the repo"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture()
def one_thread():
    """Tiny tensors run fastest on one thread; a thread pool only adds overhead on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def model_bytes() -> bytes:
    return random_model_bytes()


@pytest.fixture(scope="session")
def model(model_bytes: bytes) -> CodecModel:
    return model_from_bytes(model_bytes, "random")


@pytest.fixture(scope="session")
def grid_model() -> CodecModel:
    """The tiny random model's network under a random prior coded in the passes of a grid of depth 2."""
    return model_from_bytes(random_model_bytes("random-grid", order="grid2"), "random-grid")


@pytest.fixture(scope="session")
def model_file(model_bytes: bytes, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("models") / "random.safetensors"
    path.write_bytes(model_bytes)
    return path


@pytest.fixture(scope="session")
def codec(model: CodecModel) -> Codec:
    """Small tiles so that small test images already use several tiles."""
    return Codec(model, tile_size=64, overlap=8)


@pytest.fixture(scope="session")
def kodak_dir() -> Path:
    return shared_path("data", "kodak")
