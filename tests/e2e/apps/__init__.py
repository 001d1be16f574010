"""ASGI apps the end-to-end tests serve: pass this directory with ``--app-dir``.

The modules are imported by the bascule subprocess only, as top-level
modules (``e2e_app:app``), hence the ``e2e_`` prefix.
"""
