"""Timing shared by the benchmarks: several candidates measured in one run, taking turns item by item."""
from __future__ import annotations

import statistics
import time
from typing import Any, Callable, Sequence


def interleaved_ms(calls: dict[str, Callable[[Any], object]], items: Sequence, rounds: int) -> dict[str, float]:
    """Median ms of each call, the calls taking turns on every item in each of ``rounds`` rounds.

    A machine that gets busier during the run slows every call alike, so their ratios hold. Each call
    runs once on the first item before timing (first runs allocate).

    Example:
        >>> sorted(interleaved_ms({"a": abs, "b": str}, [1, -2], rounds=2))
        ['a', 'b']
    """
    for call in calls.values():
        call(items[0])  # warm-up
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(rounds):
        for item in items:
            for name, call in calls.items():
                begin = time.perf_counter()
                call(item)
                times[name].append((time.perf_counter() - begin) * 1000)
    return {name: statistics.median(values) for name, values in times.items()}
