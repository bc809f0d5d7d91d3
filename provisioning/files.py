"""Writing secrets and configuration atomically with the permissions they need from the first byte."""

import contextlib
import grp
import os
import pwd
import tempfile
from pathlib import Path

from provisioning.errors import ProvisionError


def write_file(path: Path, data: bytes | str, mode: int = 0o644, group: str | None = None) -> Path:
    """Write `data` to `path` atomically: a reader sees the old file or the new one, never half.

    The temporary file is created with `mode` already set, so a private key is never readable by
    others, not even for the instant between create and chmod.
    """
    raw = data.encode() if isinstance(data, str) else data
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        if group is not None:
            gid = group_id(group)
            if gid is not None:
                os.fchown(fd, -1, gid)
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except PermissionError as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise ProvisionError(f"{path}: cannot write ({exc.strerror})") from None
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


def group_id(name: str) -> int | None:
    """The gid of `name`, or None when there is no such group or we may not hand files to it."""
    try:
        gid = grp.getgrnam(name).gr_gid
    except KeyError:
        return None
    # Only root (or a member of the group) may chgrp; anyone else keeps their own group.
    if os.geteuid() != 0 and gid not in os.getgroups():
        return None
    return gid


def user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True
