"""Registers the Appwrite stand-in tests' fixture; shared helpers live in appwrite_support (a unique module name)."""

from appwrite_support import api

__all__ = ["api"]
