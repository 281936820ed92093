"""Shared fixtures: the real models (loaded once per session) and the data paths."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from helpers import lfw_parts_or_skip


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
