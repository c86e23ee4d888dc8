"""The training-loop skeleton every trainer shares: run folder, checkpoint, resume, progress and log.

A run lives in one folder: ``checkpoint.pt`` (everything a resumed run needs, written atomically)
and ``log.jsonl`` (one JSON record per logged step). A folder that holds a checkpoint is only
continued (``--resume``) or started over (``--force``), never overwritten by mistake; a run ends by
printing its last record as a table and where it saved. The codec trainer (:mod:`~aecodec.training.train`),
the decoder fine-tune (:mod:`~aecodec.training.finetune`) and the autoencoder family's trainer each
build their networks, restore them from :attr:`Run.state` when resuming, and hand one training step
to :meth:`Run.loop`; what a step does and what its checkpoint holds stay theirs.
"""

import argparse
import io
import json
import math
import random
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from aecodec.codec.files import write_atomic
from aecodec.codec.threads import set_threads
from aecodec.errors import InputError

CHECKPOINT = "checkpoint.pt"
LOG = "log.jsonl"
T = TypeVar("T")


def prepare(seed: int, threads: int = 0) -> None:
    """Seed every random generator a run uses and, if ``threads``, the threads of torch and numpy's BLAS."""
    if threads:
        set_threads(threads)
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


@dataclass(frozen=True)
class RunOptions:
    """What a run does with a checkpoint already in its folder, and whether it prints JSON."""

    resume: bool = False  # continue from it
    force: bool = False  # start over, replacing it and the log
    json: bool = False  # print records as JSON lines (as log.jsonl holds them) rather than text

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "RunOptions":
        """The options :func:`add_run_arguments` parsed."""
        return cls(resume=args.resume, force=args.force, json=args.json)


class DefaultsHelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Help that ends with each option's default, unless it is required, has none or its text gives it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.required or action.default is None or "default" in text:
            return text
        return super()._get_help_string(action)


def trainer_parser(
    prog: str, doc: str, add_arguments: Callable[[argparse.ArgumentParser], None]
) -> argparse.ArgumentParser:
    """A trainer's command-line parser: ``doc``'s first line, the options ``add_arguments`` adds, their defaults."""
    parser = argparse.ArgumentParser(prog=prog, description=doc.splitlines()[0], formatter_class=DefaultsHelpFormatter)
    add_arguments(parser)
    return parser


def add_run_arguments(parser: argparse.ArgumentParser, defaults: Any) -> None:
    """The options every trainer has, with defaults from its config ``defaults``: data, run folder and loop."""
    parser.add_argument("--data", required=True, help="folder of training images (never Kodak)")
    parser.add_argument("--out", required=True, help=f"run folder for {CHECKPOINT} and {LOG}")
    loop = {
        "steps": "training steps in all; a resumed run continues up to this",
        "batch": "crops per step",
        "crop": "side of the square training crops, in pixels",
        "seed": "seed of the initialisation and of the crops",
        "threads": "CPU threads for torch (0: torch's choice)",
        "checkpoint_every": f"write OUT/{CHECKPOINT} every N steps (and after the last)",
    }
    for name, text in loop.items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=int, default=getattr(defaults, name), help=text)
    parser.add_argument("--lr", type=float, default=defaults.lr, help="Adam learning rate")
    parser.add_argument("--resume", action="store_true", help=f"continue from OUT/{CHECKPOINT}")
    parser.add_argument("--force", action="store_true", help=f"start over in a folder that holds a {CHECKPOINT}")
    parser.add_argument("--json", action="store_true", help="print each logged record as a JSON line, not as text")


def text_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Columns aligned under ``header``: the first to the left, the others (numbers) to the right."""
    cells = [[str(c) for c in header], *([str(c) for c in row] for row in rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    return "\n".join(
        "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))).rstrip()
        for row in cells
    )


def _text(value: Any) -> str:
    """A record's value as text: lists joined by slashes."""
    return "/".join(map(str, value)) if isinstance(value, list) else str(value)


def describe(entry: dict[str, Any]) -> str:
    """A logged record on one line: ``step 500: loss 0.01, val q1 psnr 24.1, ...``."""

    def flat(record: dict[str, Any], prefix: str) -> list[str]:
        return [
            item
            for key, value in record.items()
            for item in (
                flat(value, f"{prefix}{key} ") if isinstance(value, dict) else [f"{prefix}{key} {_text(value)}"]
            )
        ]

    rest = {k: v for k, v in entry.items() if k != "step"}
    return f"step {entry['step']}: {', '.join(flat(rest, ''))}"


def summary(entry: dict[str, Any]) -> str:
    """A logged record as tables: its plain fields in one row, then a row per entry of each nested field."""
    plain = {k: v for k, v in entry.items() if not isinstance(v, dict)}
    tables = [text_table(list(plain), [[_text(v) for v in plain.values()]])]
    for key, nested in entry.items():
        if isinstance(nested, dict):
            columns = list(dict.fromkeys(c for row in nested.values() for c in row))
            rows = [[name, *(_text(row.get(c, "")) for c in columns)] for name, row in nested.items()]
            tables.append(text_table([key, *columns], rows))
    return "\n\n".join(tables)


class Run:
    """A run folder; :attr:`state` is its checkpoint when resuming one (None for a fresh start).

    A folder that holds a checkpoint needs ``options.resume`` or ``options.force`` (InputError
    otherwise). ``main`` is False on the other processes of a distributed run: they train, but
    neither write nor show progress.
    """

    def __init__(
        self,
        out: str | Path,
        options: RunOptions | None = None,
        device: torch.device | str = "cpu",
        main: bool = True,
    ) -> None:
        self.dir = Path(out)
        self.checkpoint = self.dir / CHECKPOINT
        self.options = options or RunOptions()
        self.main = main
        exists = self.checkpoint.exists()
        if exists and not (self.options.resume or self.options.force):
            raise InputError(
                f"{self.dir} already holds a run ({CHECKPOINT}): --resume continues it, --force starts over"
            )
        self.dir.mkdir(parents=True, exist_ok=True)
        self.state: dict | None = load_checkpoint(self.checkpoint, device) if exists and self.options.resume else None
        if self.state is None and main:
            for name in (CHECKPOINT, LOG):
                (self.dir / name).unlink(missing_ok=True)

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
        the log unless it is None, and printed: as JSON with ``options.json``, else as a line of
        text if ``echo``. Last come the final record as tables (JSON: nothing more) and where it saved.
        """
        log = (self.dir / LOG).open("a") if self.main else None
        last: dict[str, Any] | None = None
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
                    last, line = entry, json.dumps(entry)
                    log.write(line + "\n")
                    log.flush()
                    if self.options.json or echo:
                        tqdm.write(line if self.options.json else describe(entry))
        finally:
            if log:
                log.close()
        if self.main:
            self.report(last)
        return self.checkpoint

    def report(self, entry: dict[str, Any] | None) -> None:
        """End of a run: ``entry`` (the last record) as tables, then where the checkpoint is (on stderr with JSON)."""
        if entry and not self.options.json:
            print(summary(entry))
        print(f"saved {self.checkpoint}", file=sys.stderr if self.options.json else sys.stdout)
