"""PSNR and MS-SSIM on 8-bit RGB images."""

import math

import numpy as np
import pytest
from PIL import Image

from aecodec.bench.metrics import DB_CAP, capped_db, ms_ssim, ms_ssim_db, psnr


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    rng = np.random.default_rng(0)
    smooth = np.cumsum(rng.integers(-3, 4, size=(192, 200, 3)), axis=1)
    return np.clip(smooth + 128, 0, 254).astype(np.uint8)


def test_psnr_of_identical_images_is_infinite_and_capped_for_averages(image: np.ndarray) -> None:
    assert psnr(image, image.copy()) == math.inf
    assert capped_db(psnr(image, image)) == DB_CAP


def test_psnr_of_unit_offset_is_20_log10_255(image: np.ndarray) -> None:
    assert psnr(image, image + 1) == pytest.approx(20 * math.log10(255), abs=1e-9)
    assert psnr(image, image + 1) == pytest.approx(48.13, abs=0.005)


def test_psnr_known_mse() -> None:
    a = np.zeros((4, 4, 3), np.uint8)
    b = a.copy()
    b[0, 0, 0] = 48  # MSE = 48^2 / 48 = 48
    assert psnr(a, b) == pytest.approx(10 * math.log10(255**2 / 48))


def test_pil_images_and_grayscale_are_compared_as_rgb(image: np.ndarray) -> None:
    gray = image[:, :, 0]
    assert psnr(Image.fromarray(gray), np.repeat(gray[:, :, None], 3, axis=2)) == math.inf
    noisy = Image.fromarray(image + 1)
    assert psnr(Image.fromarray(image), noisy) == pytest.approx(psnr(image, image + 1))


def test_mismatched_or_non_8bit_images_raise(image: np.ndarray) -> None:
    with pytest.raises(ValueError, match="sizes differ"):
        psnr(image, image[:-1])
    with pytest.raises(ValueError, match="8-bit"):
        psnr(image.astype(np.float32), image)


def test_ms_ssim_of_identical_images_is_one(image: np.ndarray) -> None:
    assert ms_ssim(image, image) == pytest.approx(1.0, abs=1e-6)
    assert ms_ssim_db(1.0) == DB_CAP


def test_ms_ssim_decreases_with_distortion(image: np.ndarray) -> None:
    rng = np.random.default_rng(1)
    mild = np.clip(image + rng.normal(0, 2, image.shape), 0, 255).astype(np.uint8)
    strong = np.clip(image + rng.normal(0, 20, image.shape), 0, 255).astype(np.uint8)
    assert 1.0 > ms_ssim(image, mild) > ms_ssim(image, strong) > 0.0


def test_ms_ssim_is_nan_below_its_minimum_size(image: np.ndarray) -> None:
    small = image[:160]
    assert math.isnan(ms_ssim(small, small))
    assert math.isnan(ms_ssim_db(math.nan))
