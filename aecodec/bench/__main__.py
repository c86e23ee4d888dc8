"""`python -m aecodec.bench`: the RD benchmark without the main `aecodec` CLI."""

from aecodec.bench.cli import main

raise SystemExit(main())
