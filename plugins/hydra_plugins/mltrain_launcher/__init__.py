"""Hydra launcher plugin: mltrain's concurrent launcher of isolated, recorded trials (``hydra/launcher=mltrain``)."""
