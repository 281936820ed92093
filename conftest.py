"""The one conftest: project-wide hooks and the shared fixtures (the real models, loaded once
per session, and the data paths). It sits at the root so that the hooks also reach the
doctests in labelgen/ and train/.

A doctest whose docstring says it "needs LFW Part Labels" goes through the same
gate as the tests that need the data (``tests/helpers.py``: skipped where the data
is absent, a failure under ``SVC_REQUIRE_LFW=1``).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from _pytest.doctest import DoctestItem

from tests.helpers import lfw_parts_or_skip

NEEDS_LFW = "needs LFW Part Labels"


def pytest_runtest_setup(item: pytest.Item) -> None:
    if isinstance(item, DoctestItem) and NEEDS_LFW in (item.dtest.docstring or ""):
        lfw_parts_or_skip()


@pytest.fixture
def torch_one_thread():
    """One intra-op torch thread: the models in tests are tiny, a second thread buys nothing,
    and spinning threads stall badly when other processes share the cores."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def lfw_root() -> Path:
    """LFW Part Labels (``$SVC_LFW_PARTS`` or ``../shared/data/lfw_parts``); skips without it."""
    return lfw_parts_or_skip()


@pytest.fixture(scope="session")
def detector():
    from labelgen.stages.detect import CenterFaceDetector

    return CenterFaceDetector()


@pytest.fixture(scope="session")
def pose_estimator():
    from labelgen.stages.pose import PoseEstimator

    estimator = PoseEstimator()
    yield estimator
    estimator.close()


@pytest.fixture(scope="session")
def chain():
    from labelgen.chain import LabelChain

    with LabelChain() as label_chain:
        yield label_chain


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    from labelgen.sample import sample_image

    return sample_image("astronaut/original.jpg")
