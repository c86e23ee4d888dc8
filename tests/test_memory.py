"""The allocator setting around a large image's residual passes (aecodec.codec.memory)."""

import sys

import pytest

from aecodec.codec import memory


@pytest.fixture
def calls(monkeypatch):
    made: list[tuple[int, int]] = []
    monkeypatch.setattr(memory, "_mallopt", lambda: lambda param, value: made.append((param, value)) or 1)
    return made


def test_small_images_leave_the_allocator_alone(calls):
    with memory.unfragmented(1000, 1000):
        pass
    assert calls == []


def test_large_images_hold_a_small_threshold_and_restore_it_after_an_error(calls):
    with pytest.raises(RuntimeError), memory.unfragmented(6000, 4000):
        assert calls == [(memory._M_MMAP_THRESHOLD, memory._PASSES_THRESHOLD)]
        raise RuntimeError
    assert calls[-1] == (memory._M_MMAP_THRESHOLD, memory._STEADY_THRESHOLD)


def test_mallopt_is_found_on_linux():
    assert (memory._mallopt() is not None) == sys.platform.startswith("linux")
