"""Environments: specs locked with uv, cached by content hash, built as venvs or Docker images."""
