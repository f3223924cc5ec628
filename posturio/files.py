"""Files that hold secrets (keys, demo credentials, service URLs): owner-only from birth."""

from __future__ import annotations

import os
from pathlib import Path


def write_private(path: Path, content: str, *, exclusive: bool = False) -> None:
    """Write `content` readable by its owner only. `exclusive`: fail with FileExistsError
    if the file exists (a concurrent first writer wins)."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_EXCL if exclusive else os.O_TRUNC)
    fd = os.open(path, flags, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(content)
    os.chmod(path, 0o600)  # also when the file existed with wider permissions
