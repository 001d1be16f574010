"""External conformance suites (Autobahn|Testsuite for WebSocket)."""
