"""scripts/teacher_weights_from_onnx.py: the shipped teacher's weights, recovered from its ONNX file, are exact."""

import importlib.util

import pytest
import torch

from train.checkpoint import model_from_checkpoint, save_checkpoint
from tests.helpers import REPO_ROOT

REPO = REPO_ROOT
SHIPPED = REPO / "labelgen" / "teachers" / "faceocc-w05-v1.onnx"

pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.fixture(scope="module")
def script():
    spec = importlib.util.spec_from_file_location("teacher_weights_from_onnx",
                                                  REPO / "scripts" / "teacher_weights_from_onnx.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_recovered_v1_weights_give_the_files_logits_on_real_crops(script, lfw_root, tmp_path):
    model = script.recover(SHIPPED, 0.5, script.training_draws(str(lfw_root), 32))
    crops = script.synthetic_val_crops(str(lfw_root), 8)
    # Float32 convolutions in two runtimes agree to about 1e-6 of the logits' scale; 1e-4 is export's own check.
    assert script.max_relative_difference(model, SHIPPED, crops) < 1e-4
    # Unfolded BatchNorms carry the statistics their inputs have (a folded one would have mean 0, var 1).
    bn = model.encoder[1][3]
    assert bn.running_var.mean() > 0.01 and not torch.allclose(bn.running_var, torch.ones_like(bn.running_var))
    # A checkpoint of it loads as svc-train --init-weights and svc-export load theirs.
    save_checkpoint(tmp_path / "v1.ckpt", {"model": model.state_dict(),
                                           "config": {"model": "faceoccnet", "width": 0.5, "num_classes": 3}})
    assert script.max_relative_difference(model_from_checkpoint(tmp_path / "v1.ckpt"), SHIPPED, crops) < 1e-4


def test_a_file_of_another_width_is_refused(script):
    from train.models import create_model

    with pytest.raises(ValueError, match="shape"):
        script.load_folded(create_model("faceoccnet", num_classes=3, width=0.25), script.onnx_weights(SHIPPED))
