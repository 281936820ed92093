"""A labelling chain that cannot start where it runs: one error for the whole run, with its cause and fix.

Building a worker's chain loads native libraries (MediaPipe's needs
``libEGL.so.1``), model files from the carrier packages and the source. When
that fails, every shard on that machine would fail the same way; the run stops
at the first one with :class:`ChainCannotStart`, whose message names the cause
and what to install (:func:`explain`), instead of one traceback per shard.
"""
from __future__ import annotations

import re

from labelgen.model_files import ModelFileMissing

# The Debian/Ubuntu packages that provide the shared libraries the chain's wheels load
# (the Dockerfile installs the same ones).
LIBRARY_PACKAGES = {
    "libEGL.so.1": "libegl1 libgles2",
    "libGLESv2.so.2": "libegl1 libgles2",
    "libGL.so.1": "libgl1",
    "libglib-2.0.so.0": "libglib2.0-0",
    "libgthread-2.0.so.0": "libglib2.0-0",
}
_LIBRARY = re.compile(r"(?:[^\s:]*/)?(?P<name>lib[^\s:/]+\.so(?:\.\d+)*): (?P<problem>[^\n]+)")
_NOT_FOUND = "cannot open shared object file"


class ChainCannotStart(Exception):
    """The labelling chain (models, native libraries, source) cannot be built on the machine that was to label.

    The message is one line: the cause and the fix (see :func:`explain`).
    """


def explain(error: BaseException) -> str:
    """One line saying why the chain could not be built (``error``) and what fixes it.

    Example:
        >>> explain(OSError("libEGL.so.1: cannot open shared object file: No such file or directory"))[50:]
        'libEGL.so.1 is missing (install libegl1 libgles2; see pipelines/README.md)'
    """
    cause = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    library = _LIBRARY.search(cause) if isinstance(error, OSError) else None
    if isinstance(error, ModelFileMissing):
        what = cause  # its message names the file and the install command
    elif library is not None:
        name, problem = library["name"], library["problem"]
        state = "is missing" if problem.startswith(_NOT_FOUND) else f"cannot be loaded: {problem}"
        package = LIBRARY_PACKAGES.get(name)
        fix = f"install {package}" if package else "install the system package that provides it"
        what = f"{name} {state} ({fix}; see pipelines/README.md)"
    else:
        what = f"{type(error).__name__}: {cause}"
    return f"the labelling chain cannot start on this machine: {what}"
