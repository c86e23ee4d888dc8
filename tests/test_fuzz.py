"""The fuzz harness in CI: a few hundred mutated files, each a FormatError or a faithful decode."""

from dataclasses import replace

import numpy as np
import pytest

from aecodec.bench.fuzz import (
    EXTREME_GRIDS,
    MUTATORS,
    OK_OUTCOMES,
    Sample,
    extreme_grid,
    fuzz,
    judge,
    make_samples,
    mutate,
    summary,
)
from aecodec.bitstream.format import ALPHA, CORRECTION_FIELD, FILTER_TUNING, RESIDUAL, WIENER_FILTER, pack, unpack
from aecodec.codec.api import Codec
from aecodec.errors import FormatError
from aecodec.testing import random_residual_model

EVERYDAY_KINDS = tuple(k for k in MUTATORS if k not in ("extreme_grid", "expensive_grid"))


@pytest.fixture(scope="module")
def fuzz_codec() -> Codec:
    return Codec(random_residual_model(), tile_size=64, overlap=8)


@pytest.fixture(scope="module")
def samples(fuzz_codec: Codec) -> list[Sample]:
    return make_samples(fuzz_codec)


def test_samples_have_several_tiles_and_every_critical_chunk(samples: list[Sample]) -> None:
    assert max(len(s.data) for s in samples) > 300 and any(s.pixels.ndim == 2 for s in samples)
    tags = {tag for s in samples for tag, _ in unpack(s.data).chunks}
    assert {ALPHA, CORRECTION_FIELD, FILTER_TUNING, RESIDUAL, WIENER_FILTER} <= tags
    versions = {payload[0] for s in samples for tag, payload in unpack(s.data).chunks if tag == FILTER_TUNING}
    assert 2 in versions  # the filter chunk that offsets every bias


def test_fuzz_cases_fail_cleanly(fuzz_codec: Codec, samples: list[Sample]) -> None:
    report = fuzz(fuzz_codec, samples, seed=2024, cases=range(300), kinds=EVERYDAY_KINDS)
    assert not report.failures, summary(report)
    assert {r.kind for r in report.results} == set(EVERYDAY_KINDS)
    assert {r.outcome for r in report.results} <= set(OK_OUTCOMES)
    assert sum(r.outcome == "format-error" for r in report.results) > 250


@pytest.mark.parametrize("grid", EXTREME_GRIDS)
def test_extreme_grids_are_rejected_fast_and_small(fuzz_codec: Codec, samples: list[Sample], grid: tuple) -> None:
    forged = extreme_grid(samples[0].legacy, grid)
    outcome, *_, detail = judge(fuzz_codec, samples[0], forged)
    assert outcome == "format-error", detail
    try:  # the same grid in version 3, where the grid is a legal one
        twin = replace(forged, data=pack(unpack(forged.data, max_pixels=1 << 40), max_pixels=1 << 40))
    except FormatError:
        return
    outcome, *_, detail = judge(fuzz_codec, samples[0], twin)
    assert outcome == "format-error", detail


def test_cases_replay_identically(samples: list[Sample]) -> None:
    for case in range(50):
        assert mutate(samples, 7, case)[2] == mutate(samples, 7, case)[2]


class CrashingCodec:
    """A decoder with a bug: it raises something other than FormatError."""

    def decompress(self, data: bytes) -> np.ndarray:
        raise IndexError("boom")


def test_harness_reports_crashes_for_replay(samples: list[Sample]) -> None:
    report = fuzz(CrashingCodec(), samples, seed=5, cases=range(10, 20), kinds=("bitflip", "truncate"))
    assert [f.case for f in report.failures] == list(range(10, 20))
    assert {f.outcome for f in report.failures} == {"FAIL-crash"}
    assert "--seed 5 --case 10 --kinds bitflip,truncate" in summary(report)


def test_forgeries_with_valid_crcs_decode_as_declared_within_bounds(fuzz_codec: Codec, samples: list[Sample]) -> None:
    """Files passing every integrity check (index CRCs recomputed with the model) cost only their declared size."""
    expensive = fuzz(fuzz_codec, samples, seed=16, cases=range(4), kinds=("expensive_grid",))
    assert {r.outcome for r in expensive.results} == {"valid-forgery"}, summary(expensive)
    mixed = fuzz(fuzz_codec, samples, seed=16, cases=range(40), kinds=("valid_crcs", "splice"))
    assert not mixed.failures and any(r.outcome == "valid-forgery" for r in mixed.results), summary(mixed)
