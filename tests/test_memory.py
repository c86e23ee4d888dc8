"""The allocator calls around a large image's tiles and residual passes (aecodec.codec.memory)."""

import sys

import pytest

from aecodec.codec import memory


class FakeLibc:
    """Records the allocator calls the codec makes."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def malloc_trim(self, pad: int) -> int:
        self.calls.append(("trim", pad))
        return 1

    def mallopt(self, param: int, value: int) -> int:
        self.calls.append(("mallopt", param, value))
        return 1


@pytest.fixture
def libc(monkeypatch) -> FakeLibc:
    fake = FakeLibc()
    monkeypatch.setattr(memory, "_glibc", lambda: fake)
    return fake


def test_small_images_leave_the_allocator_alone(libc: FakeLibc) -> None:
    memory.release(1000, 1000)
    with memory.unfragmented(1000, 1000):
        pass
    assert libc.calls == []


def test_large_images_trim_and_hold_a_small_threshold_restored_after_an_error(libc: FakeLibc) -> None:
    memory.release(6000, 4000)
    assert libc.calls == [("trim", 0)]
    with pytest.raises(RuntimeError), memory.unfragmented(6000, 4000):
        assert libc.calls[1:] == [("trim", 0), ("mallopt", memory._M_MMAP_THRESHOLD, memory._PASSES_THRESHOLD)]
        raise RuntimeError
    assert libc.calls[-1] == ("mallopt", memory._M_MMAP_THRESHOLD, memory._STEADY_THRESHOLD)


def test_glibc_is_found_on_linux() -> None:
    assert (memory._glibc() is not None) == sys.platform.startswith("linux")
