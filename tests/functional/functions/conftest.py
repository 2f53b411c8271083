"""Fixtures of the function tests; they and the helpers live in functions_support (imported by name,
because several test folders have a conftest.py and `from conftest import ...` would find another's)."""

from functions_support import cloud, harness

__all__ = ["cloud", "harness"]
