"""Framework apps the tests in tests/frameworks/ serve.

The ``bascule`` subprocess imports them by their full dotted name
(``tests.frameworks.apps.starlette_app:app``) with ``--app-dir`` set to the
repository root, so they can share ``gates`` through relative imports.
"""
