"""Logging for operators: one line per happening, to stderr, with key=value context."""

import logging
import os
import sys


def setup(verbose: bool = False) -> None:
    level = logging.DEBUG if verbose else getattr(logging, os.environ.get("MATTHAN_LOG", "INFO").upper(), 20)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter(
            "%(asctime)s.%(msecs)03d %(levelname)-5s %(name)s: %(message)s", "%Y-%m-%dT%H:%M:%S"
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Third-party chatter is not an operator's business unless asked for.
    for noisy in ("uvicorn.access", "httpx", "httpcore", "alembic", "botocore", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING if not verbose else logging.DEBUG)
