"""SHA-256 of a file or an open stream, read in 1 MiB blocks: clips, models and evidence members are
too large to read whole on a Pi."""

import hashlib
from pathlib import Path
from typing import IO

BLOCK = 1 << 20


def sha256_stream(stream: IO[bytes]) -> str:
    digest = hashlib.sha256()
    for block in iter(lambda: stream.read(BLOCK), b""):
        digest.update(block)
    return digest.hexdigest()


def sha256_file(path: Path) -> str:
    with path.open("rb") as f:
        return sha256_stream(f)
