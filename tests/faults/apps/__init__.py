"""The misbehaving ASGI app the fault tests serve (in-thread, or with ``--app-dir``).

The bascule subprocess imports ``faults_app`` as a top-level module, hence the prefix.
"""
