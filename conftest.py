"""Project-wide pytest hooks: here so that they also reach the doctests in labelgen/ and train/.

A doctest whose docstring says it "needs LFW Part Labels" goes through the same
gate as the tests that need the data (``tests/helpers.py``: skipped where the data
is absent, a failure under ``SVC_REQUIRE_LFW=1``).
"""
from __future__ import annotations

import pytest
from _pytest.doctest import DoctestItem

NEEDS_LFW = "needs LFW Part Labels"


def pytest_runtest_setup(item: pytest.Item) -> None:
    if isinstance(item, DoctestItem) and NEEDS_LFW in (item.dtest.docstring or ""):
        from tests.helpers import lfw_parts_or_skip

        lfw_parts_or_skip()
