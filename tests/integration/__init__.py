"""Integration tests: the real services as OS processes on loopback ports."""
