"""Incremental runs: run only what changed, and say why (``--incremental``, ``--explain``; see ``plugin``)."""
