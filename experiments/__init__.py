"""Seed experiments, one module each (big_vision style): configs as functions, the command in each docstring."""
