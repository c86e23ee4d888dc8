"""Loss terms shared by the family, each a small pure function of tensors."""

from collections.abc import Callable

import torch
from torch import Tensor

SPARSITY_EPS = 1e-6


def gaussian_kl(mu: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)) in nats per sample, closed form summed over latent elements."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).flatten(1).sum(1)


def l1_sparsity(code: Tensor) -> Tensor:
    """Mean absolute activation of the code: the L1 sparsity penalty per code element."""
    return code.abs().mean()


def bernoulli_kl_sparsity(code: Tensor, rho: float) -> Tensor:
    """Sum over channels of KL(rho || rho_hat): each sigmoid unit's mean activation pulled towards ``rho``."""
    rho_hat = code.mean(dim=(0, 2, 3)).clamp(SPARSITY_EPS, 1 - SPARSITY_EPS)
    return (rho * torch.log(rho / rho_hat) + (1 - rho) * torch.log((1 - rho) / (1 - rho_hat))).sum()


def jacobian_frobenius_exact(fn: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    """Mean over the batch of ||d fn(x_i) / d x_i||_F^2, from the full per-sample Jacobian (small inputs only)."""

    def single(sample: Tensor) -> Tensor:
        return fn(sample.unsqueeze(0)).squeeze(0)

    jacobians = torch.func.vmap(torch.func.jacrev(single))(x)
    return jacobians.pow(2).flatten(1).sum(1).mean()


def jacobian_frobenius_hutchinson(
    code: Tensor, inputs: Tensor, projections: int = 1, generator: torch.Generator | None = None
) -> Tensor:
    """Unbiased estimate of :func:`jacobian_frobenius_exact` for ``code`` computed from ``inputs`` (needs grad).

    For v ~ N(0, I), E ||J^T v||^2 = E v^T J J^T v = tr(J J^T) = ||J||_F^2; each projection costs one
    vector-Jacobian product through the existing graph, and the estimate stays differentiable for training.
    """
    directions = torch.randn((projections, *code.shape), generator=generator, dtype=code.dtype).to(code.device)
    (jtv,) = torch.autograd.grad(code, inputs, directions, create_graph=True, is_grads_batched=True)
    return jtv.pow(2).flatten(2).sum(2).mean()
