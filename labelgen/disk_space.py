"""Running out of disk space: recognising it, and naming the file system to free.

A full file system (or a full quota) shows up as an ``OSError`` with errno
``ENOSPC`` (``EDQUOT`` for a quota), sometimes inside an error of a library's
own: PyTorch's checkpoint writer raises ``RuntimeError("[enforce fail at
inline_container.cc] . unexpected pos ...")`` with the ``OSError`` as its
context. :func:`no_space_error` finds it in the chain of causes;
:func:`file_system_of` names the mount point the user has to free space on.

Example:
    >>> import errno
    >>> try:
    ...     try:
    ...         raise OSError(errno.ENOSPC, "No space left on device")
    ...     except OSError:
    ...         raise RuntimeError("unexpected pos 576 vs 534")
    ... except RuntimeError as error:
    ...     no_space_error(error).errno == errno.ENOSPC
    True
    >>> file_system_of("/proc/self/status")
    PosixPath('/proc')
"""
from __future__ import annotations

import errno
import os
from pathlib import Path

NO_SPACE_ERRNOS = tuple(code for code in (errno.ENOSPC, getattr(errno, "EDQUOT", None)) if code is not None)


def no_space_error(error: BaseException | None) -> OSError | None:
    """The ``ENOSPC`` / ``EDQUOT`` ``OSError`` that ``error`` is or was caused by, else ``None``."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError) and error.errno in NO_SPACE_ERRNOS:
            return error
        error = error.__cause__ or error.__context__
    return None


def file_system_of(path: str | Path) -> Path:
    """The mount point of the file system that holds ``path`` (or would hold it, if it does not exist yet)."""
    path = Path(os.path.abspath(path))
    while not path.exists() and path != path.parent:
        path = path.parent
    while not os.path.ismount(path) and path != path.parent:
        path = path.parent
    return path
