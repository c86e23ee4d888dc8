"""``python -m aecodec`` is the ``aecodec`` command."""

from aecodec.codec.cli import main

raise SystemExit(main())
