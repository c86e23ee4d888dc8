"""VQ-VAE-2 (Razavi et al. 2019) with residual quantizers: the codec's analysis and synthesis.

Two levels: a bottom latent at 1/8 of the image resolution and a top latent at 1/16. The bottom
encoder sees the decoded top level (as in the paper), the decoder sees both. Each level is a
residual VQ stack; a quality ``q`` keeps ``q`` bottom stages and ``min(q, top_stages)`` top stages.
"""

from dataclasses import asdict, dataclass

import torch
from torch import Tensor, nn

from aecodec.errors import InputError
from aecodec.models.layers import UPSAMPLERS, ResBlock, check_upsample, down, up
from aecodec.models.quantizer import QuantizerOutput, ResidualVQ


@dataclass(frozen=True)
class VQVAE2Config:
    """Network sizes and the synthesis's upsampling; stored in the weights file so a model rebuilds itself.

    ``upsample="resize"`` (nearest-neighbour + convolution) is for decoders trained with perceptual and
    adversarial losses, which turn transposed convolutions' phase kernels into a checkerboard.
    """

    channels: int = 96
    latent_dim: int = 16
    num_codes: int = 256
    top_stages: int = 2
    bottom_stages: int = 10
    res_blocks: int = 2
    upsample: str = "transposed"

    def __post_init__(self) -> None:
        check_upsample(self.upsample)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class VQVAE2Output:
    """Training-time forward pass: reconstruction and both levels' quantizer outputs."""

    reconstruction: Tensor
    top: QuantizerOutput
    bottom: QuantizerOutput
    keep_top: Tensor
    keep_bottom: Tensor


def _blocks(channels: int, n: int) -> list[nn.Module]:
    return [ResBlock(channels) for _ in range(n)]


class VQVAE2(nn.Module):
    """Hierarchical VQ autoencoder; images are float tensors in [0, 1] with sides a multiple of 16."""

    stride = 16

    def __init__(self, config: VQVAE2Config) -> None:
        super().__init__()
        self.config = config
        c, d, n = config.channels, config.latent_dim, config.res_blocks
        self.encode_bottom = nn.Sequential(
            down(3, c // 2), nn.ReLU(), down(c // 2, c), nn.ReLU(), down(c, c), *_blocks(c, n)
        )
        self.encode_top = nn.Sequential(down(c, c), *_blocks(c, n), nn.ReLU(), nn.Conv2d(c, d, 1))
        self.decode_top = nn.Sequential(nn.Conv2d(d, c, 1), *_blocks(c, n), nn.ReLU(), up(c, d))
        self.pre_bottom = nn.Conv2d(c + d, d, 1)
        upsample = UPSAMPLERS[config.upsample]
        self.upsample_top = upsample(d, d)
        self.decoder = nn.Sequential(
            nn.Conv2d(2 * d, c, 3, padding=1),
            *_blocks(c, n),
            nn.ReLU(),
            upsample(c, c),
            nn.ReLU(),
            upsample(c, c // 2),
            nn.ReLU(),
            upsample(c // 2, 3),
        )
        self.quantize_top = ResidualVQ(config.top_stages, config.num_codes, d)
        self.quantize_bottom = ResidualVQ(config.bottom_stages, config.num_codes, d)

    @property
    def num_qualities(self) -> int:
        return self.config.bottom_stages

    def stages_for_quality(self, quality: int) -> tuple[int, int]:
        """(top stages, bottom stages) coded at ``quality``; InputError (a ValueError) unless it is in 1..num_qualities.

        The one place a quality is validated: the codec calls it once per image before any work.
        """
        if quality not in range(1, self.num_qualities + 1):
            raise InputError(f"quality must be in 1..{self.num_qualities}, got {quality}")
        return min(quality, self.config.top_stages), quality

    def synthesize(self, top_q: Tensor, bottom_q: Tensor) -> Tensor:
        """Image (not clamped) from both levels' quantized latents."""
        return self.decoder(torch.cat([bottom_q, self.upsample_top(top_q)], dim=1)) + 0.5

    def analyze_top(self, x: Tensor, keep_top: Tensor) -> tuple[QuantizerOutput, Tensor]:
        """The top level's quantizer output and the bottom latent, before quantization, conditioned on it."""
        h = self.encode_bottom(x - 0.5)
        top = self.quantize_top(self.encode_top(h), keep_top)
        return top, self.pre_bottom(torch.cat([h, self.decode_top(top.quantized)], 1))

    def analyze(self, x: Tensor, keep_bottom: Tensor) -> tuple[QuantizerOutput, QuantizerOutput]:
        """Both levels' quantizer outputs for ``x``; sample b keeps ``keep_bottom[b]`` bottom stages."""
        top, bottom_latent = self.analyze_top(x, keep_bottom.clamp(max=self.config.top_stages))
        return top, self.quantize_bottom(bottom_latent, keep_bottom)

    def forward(self, x: Tensor, keep_bottom: Tensor | None = None) -> VQVAE2Output:
        """Training pass; ``keep_bottom`` (B,) is how many bottom stages each sample keeps."""
        if keep_bottom is None:
            keep_bottom = torch.full((x.shape[0],), self.config.bottom_stages, device=x.device)
        top, bottom = self.analyze(x, keep_bottom)
        reconstruction = self.synthesize(top.quantized, bottom.quantized)
        return VQVAE2Output(reconstruction, top, bottom, keep_bottom.clamp(max=self.config.top_stages), keep_bottom)

    @torch.no_grad()
    def encode(self, x: Tensor, quality: int) -> tuple[list[Tensor], list[Tensor]]:
        """Indices (top stages, bottom stages) of a (1, 3, H, W) image, each stage (H', W') int64."""
        top, bottom = self.analyze(x, torch.tensor([quality], device=x.device))
        return self.stage_indices(top, bottom, quality)

    def stage_indices(
        self, top: QuantizerOutput, bottom: QuantizerOutput, quality: int
    ) -> tuple[list[Tensor], list[Tensor]]:
        """The index maps of the stages ``quality`` keeps, first sample, on the CPU."""
        n_top, n_bottom = self.stages_for_quality(quality)
        return [i[0].cpu() for i in top.indices[:n_top]], [i[0].cpu() for i in bottom.indices[:n_bottom]]

    @torch.no_grad()
    def decode(self, top: list[Tensor], bottom: list[Tensor]) -> Tensor:
        """Image (1, 3, H, W) in [0, 1] from stage index maps, as returned by :meth:`encode`."""
        device = self.quantize_top.stages[0].codebook.device
        top_q = self.quantize_top.decode([i[None].to(device) for i in top])
        bottom_q = self.quantize_bottom.decode([i[None].to(device) for i in bottom])
        return self.synthesize(top_q, bottom_q).clamp(0, 1)
