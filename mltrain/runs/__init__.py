"""Runs: the driver that takes a resolved config through the run lifecycle, and its helpers."""
