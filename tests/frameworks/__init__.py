"""Real frameworks (Starlette, FastAPI, Django, Quart, Flask) served by the real ``bascule`` command."""
