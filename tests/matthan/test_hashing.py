"""File and stream SHA-256 across block boundaries, against hashlib on the whole bytes."""

import hashlib
import io
import os
from pathlib import Path

import pytest

from matthan.hashing import BLOCK, sha256_file, sha256_stream


@pytest.mark.parametrize("size", [0, 1, BLOCK - 1, BLOCK, BLOCK + 1, 3 * BLOCK + 17])
def test_the_digest_is_hashlibs_whatever_the_size(tmp_path: Path, size: int) -> None:
    data = os.urandom(size)
    (tmp_path / "f").write_bytes(data)
    want = hashlib.sha256(data).hexdigest()
    assert sha256_file(tmp_path / "f") == want
    assert sha256_stream(io.BytesIO(data)) == want
