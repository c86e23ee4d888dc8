"""``python -m aecodec`` is the ``aecodec`` command."""

from aecodec.cli import main

raise SystemExit(main())
