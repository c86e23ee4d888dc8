"""The ``aecodec`` command (:mod:`aecodec.cli.commands`); ``python -m aecodec`` runs it too."""

from aecodec.cli.commands import main

__all__ = ["main"]
