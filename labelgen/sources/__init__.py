"""Streaming readers of web-face corpora (CASIA, VGGFace2, LFW, MS-Celeb TSV, RecordIO, folders).

Open a corpus by name; reader modules are imported on first use::

    from labelgen.sources import open_source
    source = open_source("casia", "/data/CASIA-WebFace")
    for entry in source.scan():
        data = source.read(entry.locator)
"""
from labelgen.sources.base import (
    Entry,
    Source,
    SourceError,
    available_sources,
    open_source,
    register_source,
    source_class,
)

__all__ = [
    "Entry",
    "Source",
    "SourceError",
    "available_sources",
    "open_source",
    "register_source",
    "source_class",
]
