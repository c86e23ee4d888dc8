"""The training-loop skeleton every trainer shares: run folder, checkpoint, resume, progress and log.

A run lives in one folder: ``checkpoint.pt`` (everything a resumed run needs, written atomically)
and ``log.jsonl`` (one JSON record per logged step). The codec trainer (:mod:`~aecodec.training.train`),
the decoder fine-tune (:mod:`~aecodec.training.finetune`) and the autoencoder family's trainer each
build their networks, restore them from :attr:`Run.state` when resuming, and hand one training step
to :meth:`Run.loop`; what a step does and what its checkpoint holds stay theirs.
"""

import io
import json
import math
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from aecodec.codec.files import write_atomic

CHECKPOINT = "checkpoint.pt"
LOG = "log.jsonl"
T = TypeVar("T")


def prepare(seed: int, threads: int = 0) -> None:
    """Seed every random generator a run uses and, if ``threads``, set torch's thread count."""
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed)


def default_device(local_rank: int = 0) -> torch.device:
    """This process's GPU when there is one, else the CPU."""
    return torch.device(f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")


def load_checkpoint(path: str | Path, device: torch.device | str = "cpu") -> dict:
    """A checkpoint written by :meth:`Run.save` (a trusted, local file: it may hold any Python object)."""
    return torch.load(path, map_location=device, weights_only=False)


def batch_psnr(a: Tensor, b: Tensor) -> float:
    """Mean PSNR in dB of [0, 1] image batches, the first clamped to [0, 1] (training progress, not the benchmark)."""
    mse = (a.detach().clamp(0, 1) - b).pow(2).mean(dim=(1, 2, 3)).clamp(min=1e-10)
    return float((-10 * mse.log10()).mean())


def cosine_schedule(
    optimizer: torch.optim.Optimizer, steps: int, last_epoch: int = -1
) -> torch.optim.lr_scheduler.LambdaLR:
    """Cosine decay of the learning rate to 5% of its start over ``steps``."""
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: 0.05 + 0.475 * (1 + math.cos(math.pi * min(s, steps) / steps)), last_epoch=last_epoch
    )


class Run:
    """A run folder; with ``resume``, :attr:`state` is its checkpoint (None if there is none yet).

    ``main`` is False on the other processes of a distributed run: they train, but neither write
    nor show progress.
    """

    def __init__(self, out: str | Path, resume: bool, device: torch.device | str = "cpu", main: bool = True) -> None:
        self.dir = Path(out)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.checkpoint = self.dir / CHECKPOINT
        self.main = main
        self.state: dict | None = (
            load_checkpoint(self.checkpoint, device) if resume and self.checkpoint.exists() else None
        )

    @property
    def start(self) -> int:
        """The number of steps already done: where the loop starts."""
        return self.state["step"] if self.state else 0

    def save(self, state: dict) -> None:
        """Write the checkpoint atomically, so that a crash never leaves half of one."""
        buffer = io.BytesIO()
        torch.save(state, buffer)
        write_atomic(str(self.checkpoint), buffer.getvalue(), force=True)

    def loop(
        self,
        steps: int,
        step: Callable[[int], T],
        checkpoint: Callable[[int], dict],
        checkpoint_every: int,
        record: Callable[[int, T], dict[str, Any] | None],
        record_every: int,
        postfix: Callable[[T], dict[str, str]],
        show_every: int = 1,
        echo: bool = True,
    ) -> Path:
        """Run ``step(i)`` for the steps from :attr:`start` to ``steps``; returns the checkpoint path.

        After step ``i`` (``done = i + 1`` steps), and always after the last: every ``show_every``
        steps the progress bar shows ``postfix(result)``; every ``checkpoint_every`` the checkpoint
        becomes ``checkpoint(done)``; every ``record_every`` ``record(done, result)`` is appended to
        the log (and, with ``echo``, printed) unless it is None.
        """
        log = (self.dir / LOG).open("a") if self.main else None
        try:
            bar = tqdm(
                range(self.start, steps), initial=self.start, total=steps, disable=not self.main, dynamic_ncols=True
            )
            for i in bar:
                result = step(i)
                done = i + 1
                if not self.main:
                    continue
                if i % show_every == 0 or done == steps:
                    bar.set_postfix(postfix(result))
                if done % checkpoint_every == 0 or done == steps:
                    self.save(checkpoint(done))
                entry = record(done, result) if done % record_every == 0 or done == steps else None
                if entry is not None:
                    log.write(json.dumps(entry) + "\n")
                    log.flush()
                    if echo:
                        tqdm.write(json.dumps(entry))
        finally:
            if log:
                log.close()
        return self.checkpoint
