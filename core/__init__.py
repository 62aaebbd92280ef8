"""core: the bottom of Curate's dependency graph — what every other package shares.

``core`` ← ``stores`` ← ``curate``, ``retrieval`` (and the CLI and service on top); ``core``
imports none of them, and ``retrieval`` imports nothing from ``curate``
(``tests/test_import_direction.py`` walks the imports).

- ``core.errors``   the exception tree (``curate.errors`` re-exports it)
- ``core.checks``   parameter checks: one readable line per bad value
- ``core.progress`` progress bars
- ``core.encoders`` the MiniLM text encoder backends and ``embed_texts``
- ``core.nn``       seeded torch layer initialisation
"""
