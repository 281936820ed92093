import dataclasses

import cv2
import numpy as np
import pytest

from labelgen.chain import ChainConfig, LabelResult
from labelgen.sample import NO_FACE_KEY, sample_jpeg, sample_keys
from labelgen.status import Status


def jpeg(image: np.ndarray) -> bytes:
    return cv2.imencode(".jpg", image)[1].tobytes()


@pytest.mark.parametrize("make_bytes, status", [
    (lambda real: b"", Status.DECODE_ERROR),
    (lambda real: real[: len(real) // 3], Status.DECODE_ERROR),
    (lambda real: b"GIF89a? no, just text" * 10, Status.DECODE_ERROR),
    (lambda real: jpeg(np.zeros((1, 1, 3), np.uint8)), Status.TOO_SMALL),
    (lambda real: sample_jpeg(NO_FACE_KEY), Status.NO_FACE),
    (lambda real: jpeg(np.full((10000, 10000, 3), 90, np.uint8)), Status.NO_FACE),
], ids=["empty", "truncated", "not-an-image", "1x1", "no-face", "10000x10000"])
def test_bad_input_gets_a_status_and_a_message_never_an_exception(chain, lfw_root, make_bytes, status):
    real = (lfw_root / "images" / "Aaron_Peirsol_0001.jpg").read_bytes()
    result = chain.label_bytes(make_bytes(real), key="bad")
    assert result.status == status
    assert result.message and result.label is None
    assert result.to_record()["status"] == status.label


def test_a_face_below_the_minimum_side_is_too_small(chain, astronaut):
    # The astronaut's face is found (its own test says so); a minimum side larger than any
    # face makes exactly this branch decide, whatever the detector does with tiny faces.
    original = chain.config
    chain.config = dataclasses.replace(original, min_face_side=10_000)
    try:
        result = chain.label_image(np.ascontiguousarray(astronaut))
    finally:
        chain.config = original
    assert result.status == Status.TOO_SMALL
    assert "below the minimum side of 10000 px" in result.message


def test_internal_errors_become_a_status(chain, astronaut):
    class Broken:
        name = "broken"

        def __call__(self, image, hull):
            raise RuntimeError("boom")

    original, chain.teacher = chain.teacher, Broken()
    try:
        result = chain.label_image(astronaut)
    finally:
        chain.teacher = original
    assert result.status == Status.TEACHER_FAILED and "boom" in result.message


def test_every_sample_face_gets_a_valid_label(chain):
    results = [chain.label_bytes(sample_jpeg(key), key) for key in sample_keys()]
    ok = [r for r in results if r.ok]
    assert len(ok) >= len(results) - 2
    assert any(r.blobs > 0 for r in ok)  # (labels without blobs: the hull teacher's, test_crop_size_256_...)
    for r in ok:
        assert r.image.shape == (128, 128, 3) and r.label.shape == (128, 128) and r.label.dtype == np.uint8
        ids = np.unique(r.label)
        assert ids[0] == 0 and 1 in ids
        assert ids.tolist() == list(range(int(ids.max()) + 1))  # blob ids are compact: 2, 3, ...
        assert r.contour.shape == (64, 2)
        assert set(r.timings) >= {"decode", "detect", "pose", "teacher"}


def test_crop_size_256_and_config_round_trip(astronaut):
    from labelgen.chain import LabelChain

    config = ChainConfig(crop_size=256, teacher="hull")
    assert ChainConfig.from_dict(config.to_dict()) == config
    with LabelChain(config) as chain:
        result = chain.label_image(astronaut)
    assert result.ok and result.label.shape == (256, 256) and result.blobs == 0


def test_record_is_json_ready(chain, astronaut):
    import json

    record = chain.label_image(astronaut, key="a").to_record()
    assert json.loads(json.dumps(record))["pose"]["method"] in ("mediapipe", "solvepnp")
    assert len(record["contour"]) == 64
    assert LabelResult(key="x").to_record()["status"] == "pending"


def test_label_by_teachers_equals_one_chain_per_teacher(astronaut):
    from labelgen.chain import LabelChain
    from labelgen.teachers import load_teacher

    names = ["hull", "classical"]
    with LabelChain(ChainConfig(teacher="hull")) as shared:
        together = shared.label_image_by_teachers(astronaut, [load_teacher(n) for n in names], key="a")
    assert [r.status for r in together] == [Status.OK, Status.OK]
    for name, result in zip(names, together):
        with LabelChain(ChainConfig(teacher=name)) as alone:
            reference = alone.label_image(astronaut, key="a")
        assert np.array_equal(result.label, reference.label) and result.key == "a"
        assert np.array_equal(result.crop.matrix, reference.crop.matrix) and result.blobs == reference.blobs
    assert not np.array_equal(together[0].label, together[1].label), "the teachers differ"


def test_label_by_teachers_keeps_failures_apart(chain, astronaut):
    class Broken:
        name = "broken"

        def __call__(self, image, hull):
            raise RuntimeError("boom")

    results = chain.label_image_by_teachers(astronaut, [Broken(), chain.teacher])
    assert results[0].status == Status.TEACHER_FAILED and "boom" in results[0].message
    assert results[1].status == Status.OK and results[1].label is not None
    blank = np.full((200, 200, 3), 90, np.uint8)
    assert [r.status for r in chain.label_image_by_teachers(blank, [Broken(), chain.teacher])] == [Status.NO_FACE] * 2
