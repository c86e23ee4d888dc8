"""Loss terms of the autoencoder family against values computed by hand or by torch itself."""

import math

import pytest
import torch
from torch.distributions import Normal, kl_divergence

from aecodec.bitstream.entropy import MAX_ROW_TOTAL
from aecodec.errors import FormatError
from aecodec.family.codec import frequency_table
from aecodec.family.container import pack, unpack
from aecodec.family.contractive import ContractiveAutoencoder, ContractiveConfig
from aecodec.family.denoising import corrupt_image
from aecodec.family.kmeans_vq import BlockVQ, BlockVQConfig
from aecodec.family.losses import (
    bernoulli_kl_sparsity,
    gaussian_kl,
    jacobian_frobenius_exact,
    jacobian_frobenius_hutchinson,
    l1_sparsity,
)
from aecodec.training.gan import adaptive_generator_weight, hinge_discriminator_loss, hinge_generator_loss


@pytest.fixture(scope="module")
def tiny_contractive() -> ContractiveAutoencoder:
    torch.manual_seed(0)
    return ContractiveAutoencoder(ContractiveConfig(channels=4, latent_dim=2, stride=8, projections=0))


pytestmark = pytest.mark.usefixtures("one_thread")


def reference_frobenius(fn, x: torch.Tensor) -> torch.Tensor:
    """||J||_F^2 per sample from torch.autograd.functional.jacobian of the whole batch (cross terms are 0)."""
    return torch.autograd.functional.jacobian(fn, x).pow(2).sum() / x.shape[0]


def test_exact_jacobian_penalty_matches_autograd(tiny_contractive: ContractiveAutoencoder) -> None:
    x = torch.rand(2, 3, 16, 16)
    expected = reference_frobenius(tiny_contractive.encode, x)
    torch.testing.assert_close(jacobian_frobenius_exact(tiny_contractive.encode, x), expected)
    assert tiny_contractive.bottleneck(x).metrics["jacobian"] == pytest.approx(expected.item(), rel=1e-5)


def test_hutchinson_estimate_converges_to_exact(tiny_contractive: ContractiveAutoencoder) -> None:
    generator = torch.Generator().manual_seed(1)
    x = torch.rand(2, 3, 16, 16, generator=generator).requires_grad_(True)
    estimate = jacobian_frobenius_hutchinson(tiny_contractive.encode(x), x, projections=200, generator=generator)
    # Relative standard deviation is at most sqrt(2 / 200) = 10% (about 5% here); the seeded draw is deterministic.
    torch.testing.assert_close(estimate, reference_frobenius(tiny_contractive.encode, x.detach()), rtol=0.25, atol=0)


def test_hutchinson_estimate_is_differentiable(tiny_contractive: ContractiveAutoencoder) -> None:
    x = torch.rand(1, 3, 16, 16, requires_grad=True)
    jacobian_frobenius_hutchinson(tiny_contractive.encode(x), x).backward()
    assert tiny_contractive.encoder.net[0].weight.grad.abs().sum() > 0


def test_gaussian_kl_closed_form() -> None:
    mu = torch.tensor([[0.5, -1.0]])
    logvar = torch.tensor([[0.0, math.log(4.0)]])
    by_hand = 0.5 * (0.25 + 1 - 1 - 0) + 0.5 * (1 + 4 - 1 - math.log(4.0))
    torch.testing.assert_close(gaussian_kl(mu, logvar), torch.tensor([by_hand]))
    reference = kl_divergence(Normal(mu, (0.5 * logvar).exp()), Normal(0.0, 1.0)).sum(1)
    torch.testing.assert_close(gaussian_kl(mu, logvar), reference)


def test_sparsity_penalties() -> None:
    code = torch.tensor([-1.0, 2.0, 0.5, -0.5]).view(1, 1, 2, 2)
    assert l1_sparsity(code).item() == pytest.approx(1.0)
    half = torch.full((2, 3, 2, 2), 0.5)
    per_channel = 0.1 * math.log(0.1 / 0.5) + 0.9 * math.log(0.9 / 0.5)
    assert bernoulli_kl_sparsity(half, rho=0.1).item() == pytest.approx(3 * per_channel, rel=1e-5)
    assert bernoulli_kl_sparsity(torch.full((2, 3, 2, 2), 0.1), rho=0.1).item() == pytest.approx(0, abs=1e-6)


def test_hinge_losses_on_known_logits() -> None:
    real = torch.tensor([2.0, 0.5, -1.0])
    fake = torch.tensor([-2.0, 0.0, 1.0])
    # relu(1 - real) = [0, 0.5, 2], relu(1 + fake) = [0, 1, 2]
    assert hinge_discriminator_loss(real, fake).item() == pytest.approx(0.5 * (2.5 / 3 + 1.0))
    assert hinge_generator_loss(fake).item() == pytest.approx(1 / 3)


def test_adaptive_generator_weight_on_a_toy_graph() -> None:
    last = torch.tensor([1.0, 2.0], requires_grad=True)
    rec = last.pow(2).sum()  # gradient 2w = [2, 4]
    gan = 3 * last.sum()  # gradient [3, 3]
    weight = adaptive_generator_weight(rec, gan, last)
    assert weight.item() == pytest.approx(math.sqrt(20) / (math.sqrt(18) + 1e-4))
    assert not weight.requires_grad
    assert adaptive_generator_weight(rec, 0 * last.sum(), last).item() == pytest.approx(1e4)


def test_corruption_extremes() -> None:
    x = torch.rand(2, 3, 16, 16)
    assert torch.equal(corrupt_image(x, noise_sigma=0.0, mask_fraction=0.0, mask_patch=8), x)
    assert torch.equal(corrupt_image(x, noise_sigma=0.3, mask_fraction=1.0, mask_patch=8), torch.full_like(x, 0.5))
    masked = corrupt_image(x, noise_sigma=0.0, mask_fraction=0.5, mask_patch=4)
    changed = (masked != x).any(dim=1)  # (2, 16, 16): whole 4x4 patches are blanked or kept
    assert torch.equal(changed, changed[:, ::4, ::4].repeat_interleave(4, 1).repeat_interleave(4, 2))


def piecewise_constant_images() -> torch.Tensor:
    """Two 16x16 images of 4x4 blocks in five dyadic colours (exact in float32)."""
    colours = torch.tensor([[0, 0, 0], [1, 1, 1], [0.5, 0.25, 0.75], [0.125, 0.5, 1], [1, 0, 0.25]])
    labels = torch.randint(0, 5, (2, 4, 4), generator=torch.Generator().manual_seed(0))
    labels[0, 0, :] = torch.arange(4)
    labels[1, 0, 0] = 4
    return colours[labels].permute(0, 3, 1, 2).repeat_interleave(4, 2).repeat_interleave(4, 3)


@pytest.mark.parametrize("num_codes", [5, 8])
def test_kmeans_vq_reconstructs_piecewise_constant_images_exactly(num_codes: int) -> None:
    images = piecewise_constant_images()
    model = BlockVQ(BlockVQConfig(num_codes=num_codes))
    model.fit(images)
    assert torch.equal(model(images), images)


def test_kmeans_fit_is_deterministic() -> None:
    images = torch.rand(2, 3, 16, 16)
    first, second = BlockVQ(BlockVQConfig(num_codes=6)), BlockVQ(BlockVQConfig(num_codes=6))
    first.fit(images), second.fit(images)
    assert torch.equal(first.quantizer.codebook, second.quantizer.codebook)


def test_container_round_trip_and_truncation() -> None:
    data = pack([3, 480, 640, 16, 30, 40], [b"abc", b"", b"de"])
    assert unpack(data) == ([3, 480, 640, 16, 30, 40], [b"abc", b"", b"de"])
    with pytest.raises(FormatError):
        unpack(data[:-1])
    with pytest.raises(FormatError):
        unpack(b"JUNK" + data[4:])


def test_frequency_table_smooths_and_fits_the_coder() -> None:
    table = frequency_table(torch.tensor([0, 0, 2]), num_codes=4)
    assert table.tolist() == [3, 1, 2, 1]
    big = frequency_table(torch.zeros(MAX_ROW_TOTAL + 10, dtype=torch.long), num_codes=4)
    assert big.sum() <= MAX_ROW_TOTAL and big.min() >= 1
