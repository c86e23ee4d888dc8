"""Exact bits per index of the held-out photos' and Kodak's half-resolution bases under each model's integer prior.

PYTHONPATH=. python research/prior/model_bits.py CACHE MODEL...    (CACHE: finetune.py's index cache)
"""

import sys

from aecodec.models.model_files import resolve_model
from research.prior.finetune import dataset, integer_bits


def main() -> None:
    data = dataset(sys.argv[1])
    for name in sys.argv[2:]:
        prior = resolve_model(name).prior
        for part in ("held", "kodak"):
            bits = integer_bits(prior, data[part])
            print(name, part, " ".join(f"q{q} {v:.3f}" for q, v in bits.items()), flush=True)


if __name__ == "__main__":
    main()
