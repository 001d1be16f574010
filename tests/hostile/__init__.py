"""Hostile clients against a live bascule: smuggling, slow clients, garbage on every listener."""
