"""A rate-distortion curve: mean bpp, PSNR and MS-SSIM per operating point, measured or published."""

from __future__ import annotations

from dataclasses import dataclass

from aecodec.bench.metrics import ms_ssim_db


@dataclass(frozen=True)
class RDCurve:
    """One codec's curve; `ms_ssim` is linear (0..1) and None when not available (some publications)."""

    name: str
    bpp: list[float]
    psnr: list[float]
    ms_ssim: list[float] | None = None
    published: bool = False

    @property
    def label(self) -> str:
        """Name shown in plots and tables; published curves are marked as such."""
        return f"{self.name} (published)" if self.published else self.name

    @property
    def ms_ssim_db(self) -> list[float] | None:
        """MS-SSIM as -10*log10(1 - MS-SSIM), the scale used for plots and MS-SSIM BD-rates."""
        return None if self.ms_ssim is None else [ms_ssim_db(v) for v in self.ms_ssim]

    def quality(self, metric: str) -> list[float] | None:
        """Quality values for `metric` ("psnr" or "ms-ssim", the latter in dB), None if unavailable."""
        if metric == "psnr":
            return self.psnr
        if metric == "ms-ssim":
            return self.ms_ssim_db
        raise ValueError(f"unknown metric {metric!r}; use 'psnr' or 'ms-ssim'")
