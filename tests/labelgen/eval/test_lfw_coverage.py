"""Detection and face-region coverage on real LFW Part Labels test faces."""
import numpy as np
import pytest

from labelgen.eval.coverage import hull_coverage, lfw_hull_coverage


def coverage_on(stems, lfw_root, pose_estimator):
    from labelgen.stages.faces import FaceFinder

    result = lfw_hull_coverage(lfw_root, stems, FaceFinder("centerface", pose_estimator))
    assert result.posed == result.detected  # no pose failures on these faces
    return result.detected / result.images, result.recall, result.precision


def test_fixed_subset_of_the_test_split(lfw_root, pose_estimator):
    stems = (lfw_root / "splits" / "test.txt").read_text().split()[::6]  # 155 faces
    rate, recall, precision = coverage_on(stems, lfw_root, pose_estimator)
    assert rate >= 0.99
    assert recall >= 0.85
    assert precision >= 0.97


@pytest.mark.slow
def test_whole_test_split(lfw_root, pose_estimator):
    stems = (lfw_root / "splits" / "test.txt").read_text().split()
    assert len(stems) == 927
    rate, recall, precision = coverage_on(stems, lfw_root, pose_estimator)
    assert rate >= 0.99 and recall >= 0.85 and precision >= 0.97


def test_coverage_metric_on_a_hand_made_case():
    truth = np.zeros((10, 10), np.uint8)
    truth[2:8, 2:8] = 1  # face, chin at row 5: rows 6-7 are neck
    truth[0:2, 2:8] = 2  # hair
    hull = np.zeros((10, 10), bool)
    hull[1:6, 2:8] = True  # covers hair row 1 and face rows 2-5
    score = hull_coverage(hull, truth, chin_row=5)
    assert score.recall == 1.0 and score.precision == 1.0
    hull[:, 8] = True  # 10 background pixels
    assert hull_coverage(hull, truth, chin_row=5).precision == pytest.approx(30 / 40)
