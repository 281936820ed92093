import numpy as np
import pytest
import torch

from labelgen.sample import sample_image, sample_occluder_mask
from labelgen.stages.crop import crop_labels
from labelgen.stages.teacher import (CPU_BATCH, GPU_BATCH, ClassicalTeacher, HullTeacher, ModelTeacher,
                                     fill_small_holes, inner_face_region, onnx_providers, to_network_input)
from labelgen.teachers import load_teacher


class RedIsFace(torch.nn.Module):
    """A fake segmenter with a known answer: class 1 wherever red exceeds green."""

    def forward(self, x):
        face = x[:, 0:1] - x[:, 1:2]
        return torch.cat([torch.zeros_like(face), face, torch.zeros_like(face) - 0.01], dim=1)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    folder = tmp_path_factory.mktemp("teachers")
    module = RedIsFace().eval()
    example = torch.zeros(1, 3, 64, 64)
    torch.jit.trace(module, example).save(str(folder / "red.pt"))
    torch.onnx.export(module, example, str(folder / "red.onnx"), dynamo=False, opset_version=17,
                      input_names=["image"], output_names=["logits"])
    return folder


@pytest.mark.parametrize("name", ["red.pt", "red.onnx"])
def test_model_teacher_follows_the_documented_convention(exported, name):
    rng = np.random.default_rng(0)
    crop = rng.integers(0, 256, size=(64, 64, 3), dtype=np.uint8)
    hull = np.zeros((64, 64), bool)
    hull[8:56, 8:56] = True
    teacher = load_teacher(str(exported / name))
    assert isinstance(teacher, ModelTeacher)
    teacher.input_size = 64
    visible = teacher(crop, hull)
    network_input = to_network_input(crop, 64)
    expected = (network_input[0, 0] - network_input[0, 1] > 0) & hull
    np.testing.assert_array_equal(visible, expected)
    assert 0.2 < visible[hull].mean() < 0.8
    # Batches of crops only where the model runs on a GPU: PyTorch's CUDA for TorchScript, onnxruntime's for ONNX.
    on_gpu = torch.cuda.is_available() if name.endswith(".pt") else "CUDAExecutionProvider" in onnx_providers()
    assert teacher.preferred_batch == (GPU_BATCH if on_gpu else CPU_BATCH)


def test_load_teacher_rejects_unknown_names_and_missing_files(tmp_path):
    with pytest.raises(ValueError, match="classical"):
        load_teacher("magic")
    with pytest.raises(FileNotFoundError):
        load_teacher(str(tmp_path / "absent.onnx"))
    assert isinstance(load_teacher("hull"), HullTeacher)


def test_inner_face_region_is_inside_the_hull_below_its_middle():
    hull = np.zeros((100, 100), bool)
    hull[10:90, 20:80] = True
    region = inner_face_region(hull)
    rows, cols = np.nonzero(region)
    assert region.sum() > 0 and not region[~hull].any()
    assert rows.min() >= 50 and rows.max() < 90 and cols.min() > 30 and cols.max() < 70


def test_fill_small_holes_keeps_large_ones():
    mask = np.ones((50, 50), bool)
    mask[10:13, 10:13] = False  # 9 px hole
    mask[25:45, 25:45] = False  # 400 px hole
    filled = fill_small_holes(mask, 50)
    assert filled[11, 11] and not filled[30, 30]


def test_classical_teacher_sees_the_face_and_not_the_sunglasses(chain):
    key = "astronaut/sunglasses.jpg"
    result = chain.label_image(sample_image(key))
    assert result.ok
    glasses = crop_labels(sample_occluder_mask(key).astype(np.uint8), result.crop).astype(bool)
    glasses &= result.label > 0
    occluded = result.label >= 2
    assert glasses.sum() > 50
    assert occluded[glasses].mean() > 0.6  # most of the glasses are labelled occlusion
    clean = chain.label_image(sample_image("astronaut/original.jpg"))
    assert (clean.label[glasses] >= 2).mean() < 0.2  # and that area is face without them


def test_classical_teacher_on_a_clean_face_keeps_most_of_the_hull(astronaut, chain):
    result = chain.label_image(astronaut)
    teacher = ClassicalTeacher()
    hull = result.label > 0
    visible = teacher(result.image, hull)
    assert not visible[~hull].any()
    assert visible[hull].mean() > 0.6
