"""ASGI adapters: pure state machines between protocol events and ASGI messages."""
