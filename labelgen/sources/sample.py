"""The embedded sample as a source: ``labelgen run --source sample`` needs no data."""
from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from labelgen.sample import sample_jpeg, sample_keys
from labelgen.sources.base import Entry, Source, SourceError, register_source


@register_source("sample")
class SampleSource(Source):
    """The 34 generated sample images (see :mod:`labelgen.sample`); ``root`` is ignored.

    Identities: one per base photograph, in the order of :func:`sample_keys`.
    """

    layout = "(none: the sample is generated in memory)"

    def __init__(self, root: str | os.PathLike | None = None):
        self.root = Path("<embedded sample>")

    def _check_layout(self) -> None:
        pass

    def scan(self) -> Iterator[Entry]:
        names: list[str] = []
        for key in sample_keys():
            name = key.split("/")[0]
            if name not in names:
                names.append(name)
            yield Entry(key=key, identity=names.index(name), locator=key)

    def read(self, locator: str) -> bytes:
        if locator not in sample_keys():
            raise SourceError(f"sample source has no image {locator!r}")
        return sample_jpeg(locator)

    def describe(self) -> dict:
        return {"source": self.name, "root": None}
