"""The live progress bar of a run: images done, with ok and failed counts, as the shard tasks go."""
from __future__ import annotations

import sys
import threading
from collections import Counter

from labelgen.status import Status


class Progress:
    """The live bar: images done, with ok and failed counts, as the tasks go.

    Counts come from reports every :data:`~labelgen.run.worker.PROGRESS_ROWS` images of a running
    shard; the shard's completion record replaces its reports when it comes
    (a shard retried after a worker died reports twice, but counts once).
    """

    def __init__(self, images: int, enabled: bool):
        from tqdm import tqdm

        self.bar = tqdm(total=images, unit="img", desc="labelling", disable=not enabled, smoothing=0.05)
        self.lock = threading.Lock()  # reports come from the Dask client's thread
        self.live: dict[int, Counter] = {}
        self.recorded: set[int] = set()
        self.counts: Counter = Counter()

    def report(self, shard: int, counts: Counter) -> None:
        with self.lock:
            if shard not in self.recorded:
                self.live.setdefault(shard, Counter()).update(counts)
                self.counts.update(counts)

    def record(self, record: dict) -> None:
        with self.lock:
            self.recorded.add(record["shard"])
            self.counts.subtract(self.live.pop(record["shard"], Counter()))
            self.counts.update(record["counts"])
        self.refresh()

    def report_and_refresh(self, shard: int, counts: Counter) -> None:
        """:meth:`report`, redrawn at once: for reports from the driver's own thread (a serial run)."""
        self.report(shard, counts)
        self.refresh()

    def refresh(self) -> None:
        """Redraw (from the driver's thread)."""
        with self.lock:
            done, ok = sum(self.counts.values()), self.counts[Status.OK.label]
        self.bar.set_postfix(ok=ok, failed=done - ok, refresh=False)
        self.bar.update(done - self.bar.n)

    def note(self, text: str) -> None:
        """A line above the bar."""
        self.bar.write(text, file=sys.stderr)

    def close(self) -> None:
        self.bar.close()
