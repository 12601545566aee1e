"""Fixtures from the reference implementations themselves (see README.md in this folder)."""
