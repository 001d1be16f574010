"""The asyncio driver: moves bytes between sockets and the sans-I/O protocol code, runs the app."""
