"""A small Django project served over ASGI (``asgi.py``) and WSGI (``wsgi.py``).

No database, no installed apps: async and sync views, a streaming response
(async iterator for ASGI, sync iterator for WSGI), forms with CSRF
protection on and one exempt view.  ``channels_asgi.py`` adds a Django
Channels WebSocket consumer when ``channels`` is installed.
"""
