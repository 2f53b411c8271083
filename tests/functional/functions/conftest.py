"""Fixtures of the function tests: they and the helpers live in tests/support/handlers.py."""

from tests.support.handlers import cloud, harness

__all__ = ["cloud", "harness"]
