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
