"""Logging for the server processes: the ``mltrain.serving`` logger to stderr."""

from __future__ import annotations

import logging
import sys


def setup_logging(role: str) -> logging.Logger:
    log = logging.getLogger("mltrain.serving")
    if not log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(
            logging.Formatter(f"%(asctime)s mltrain.serving {role} [%(process)d] %(levelname)s: %(message)s")
        )
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False
    return log
