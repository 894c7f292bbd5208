"""Importable helpers for tests (TFDS builder classes must live in an importable package)."""
