"""`python -m aecodec.benchmarks`: the RD benchmark without the main `aecodec` CLI."""

from aecodec.benchmarks.cli import main

raise SystemExit(main())
