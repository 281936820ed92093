"""Per-image status codes, shared by the chain, the store and the reports.

Every image ends with exactly one code. Codes are stored as ``uint8`` in the
Zarr store, so their numbers are part of the store schema: never renumber.
"""
from __future__ import annotations

import enum


class Status(enum.IntEnum):
    OK = 0
    NO_FACE = 1  # the detector found no face
    DECODE_ERROR = 2  # empty, truncated or non-image bytes
    TOO_SMALL = 3  # image or detected face below the configured minimum size
    POSE_FAILED = 4  # landmarks missing or the pose is implausible
    TEACHER_FAILED = 5  # the teacher model raised or returned an invalid mask
    READ_ERROR = 6  # the source could not deliver the bytes (missing file, I/O error)
    INTERNAL_ERROR = 7  # an unexpected exception; the message holds the traceback summary
    UNREADABLE = 8  # the file exists but this process may not read it (permission denied)
    NOT_A_FILE = 9  # the entry is a directory, FIFO, socket or device, not a regular file
    TOO_LARGE = 10  # the header declares more pixels than the decoder accepts (size in the message)
    WORKER_LOST = 11  # labelled alone, the image killed its worker process again (memory, a native crash)
    DAMAGED = 254  # never stored: what a reader sees for the rows of a shard whose stored chunks are damaged
    PENDING = 255  # not processed yet (the store's fill value)

    @property
    def label(self) -> str:
        return self.name.lower()


class StageError(Exception):
    """A stage could not produce its output for this image (not a bug)."""

    def __init__(self, status: Status, message: str):
        super().__init__(message)
        self.status = Status(status)
        self.message = message


def read_status(error: BaseException) -> Status:
    """The status of an image whose bytes a source could not deliver.

    A permission problem and an entry that is not a file are told apart from
    other I/O errors (missing file, dangling or looping symlink, EIO) because
    the person fixing the corpus does different things about each.
    """
    if isinstance(error, StageError):
        return error.status
    if isinstance(error, PermissionError):
        return Status.UNREADABLE
    if isinstance(error, IsADirectoryError):
        return Status.NOT_A_FILE
    return Status.READ_ERROR
