"""Tests for the distillation term and ``svc-train --distill``: the loss against torch's KL divergence, the
reference sees the images before photometric augmentation, the student moves towards it, resume keeps it."""

import json

import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner

from tests.helpers import assert_one_error_line
from train.checkpoint import model_from_checkpoint, save_checkpoint
from train.cli import main as svc_train
from train.config import DEFAULT_DISTILL_WEIGHT, TrainConfig, resolve_defaults
from train.datasets.synthetic import make_synthetic_lfw
from train.distributed import init_distributed
from train.engine.trainer import Trainer, train
from train.losses import distillation_loss
from train.models import create_model

pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.mark.parametrize("shape", [(1, 3, 4, 4), (2, 3, 5, 7), (3, 2, 1, 1)])
def test_loss_is_torchs_kl_divergence_averaged_over_pixels(shape):
    torch.manual_seed(0)
    student, teacher = torch.randn(shape), torch.softmax(3 * torch.randn(shape), 1)
    pixels = shape[0] * shape[2] * shape[3]
    reference = F.kl_div(F.log_softmax(student, 1), teacher, reduction="sum") / pixels
    assert torch.allclose(distillation_loss(student, teacher), reference, rtol=1e-5)


def test_gradient_is_student_minus_teacher_over_the_pixels():
    torch.manual_seed(1)
    student = torch.randn(2, 3, 4, 4, requires_grad=True)
    teacher = torch.softmax(torch.randn(2, 3, 4, 4), 1)
    distillation_loss(student, teacher).backward()
    expected = (torch.softmax(student.detach(), 1) - teacher) / (2 * 4 * 4)
    assert torch.allclose(student.grad, expected, atol=1e-7)  # entries are ~1/32, so 1e-7 is float32 rounding


def test_zero_when_student_agrees_and_finite_with_zero_probabilities():
    teacher = torch.zeros(1, 3, 2, 2)
    teacher[:, 1] = 1.0  # classes 0 and 2 have probability 0: 0 log 0 must count as 0
    agreeing = torch.log(teacher.clamp_min(1e-30))
    assert float(distillation_loss(agreeing, teacher)) == pytest.approx(0.0, abs=1e-6)
    assert torch.isfinite(distillation_loss(torch.zeros(1, 3, 2, 2), teacher))
    assert float(distillation_loss(torch.zeros(1, 3, 2, 2), teacher)) == pytest.approx(torch.log(torch.tensor(3.0)))


def test_shapes_must_match():
    with pytest.raises(ValueError, match="differ in shape"):
        distillation_loss(torch.zeros(1, 3, 4, 4), torch.zeros(1, 3, 4, 5))


def test_resolve_defaults_keeps_a_resumed_runs_reference():
    new = TrainConfig(out="x")
    resolve_defaults(new, None)
    assert (new.distill, new.distill_weight) == (None, DEFAULT_DISTILL_WEIGHT)
    kept = TrainConfig(out="x")
    resolve_defaults(kept, {"distill": "/models/ref.onnx", "distill_weight": 3.0})
    assert (kept.distill, kept.distill_weight) == ("/models/ref.onnx", 3.0)
    old = TrainConfig(out="x")
    resolve_defaults(old, {"width": 1.0})  # a run from before the option: it trained without
    assert old.distill is None


@pytest.fixture(scope="module")
def tiny_lfw(tmp_path_factory):
    return make_synthetic_lfw(tmp_path_factory.mktemp("distill") / "lfw", {"train": 8, "val": 2}, size=64)


@pytest.fixture(scope="module")
def reference(tiny_lfw, tmp_path_factory):
    """A reference checkpoint: a tiny occlusion model trained a few steps."""
    out = tmp_path_factory.mktemp("reference") / "run"
    train(TrainConfig(out=str(out), **tiny_config(tiny_lfw), max_steps=2))
    return out / "checkpoints" / "last.ckpt"


def tiny_config(lfw, **options) -> dict:
    return dict(lfw_parts=True, occlude=True, lfw_root=str(lfw), image_size=32, width=0.125, batch_size=4,
                num_workers=0, progress=False, photometric=0.0, **options)


def test_the_reference_sees_the_images_before_photometric_augmentation(tmp_path, tiny_lfw, reference):
    trainer = Trainer(TrainConfig(out=str(tmp_path / "run"), **{**tiny_config(tiny_lfw), "photometric": 1.0},
                                  distill=str(reference)), init_distributed("cpu"))
    seen, stepped = [], []
    reference_logits, train_step = trainer.reference.logits, trainer.train_step
    trainer.reference.logits = lambda images: seen.append(images.clone()) or reference_logits(images)
    trainer.train_step = lambda batch, probs: stepped.append((batch[0].clone(), probs)) or train_step(batch, probs)
    batch = next(iter(trainer.data.train_loader(0)))
    trainer._train_batch(batch)
    assert torch.equal(seen[0], batch[0])  # the data set's images, as the loader made them
    augmented, probs = stepped[0]
    assert not torch.equal(augmented, batch[0])  # the student's input was augmented
    assert probs.shape == (4, 3, 32, 32) and torch.allclose(probs.sum(1), torch.ones(4, 32, 32), atol=1e-5)


def mean_kl_to(reference_path, run, images) -> float:
    reference, student = model_from_checkpoint(reference_path), model_from_checkpoint(run)
    with torch.no_grad():
        return float(distillation_loss(student(images), torch.softmax(reference(images), 1)))


def test_distillation_pulls_the_student_towards_the_reference(tmp_path, tiny_lfw, reference):
    # Same seed, data and steps; only the distillation term differs. With a weight that makes it dominate,
    # the distilled student must end much closer to the reference than the plain one.
    common = dict(**tiny_config(tiny_lfw), max_steps=12, lr=3e-3, schedule="flat", select="last", epochs=6)
    train(TrainConfig(out=str(tmp_path / "plain"), **common))
    train(TrainConfig(out=str(tmp_path / "distilled"), **common, distill=str(reference), distill_weight=100.0))
    torch.manual_seed(0)
    images = torch.randn(4, 3, 32, 32)
    plain = mean_kl_to(reference, tmp_path / "plain", images)
    distilled = mean_kl_to(reference, tmp_path / "distilled", images)
    assert distilled < 0.5 * plain, (distilled, plain)


def test_svc_train_records_the_reference_and_resume_keeps_it(tmp_path, tiny_lfw, reference):
    run = tmp_path / "run"
    common = ["--lfw-parts", "--occlude", "--lfw-root", str(tiny_lfw), "--out", str(run), "--image-size", "32",
              "--width", "0.125", "--batch-size", "4", "--num-workers", "0", "--no-progress"]
    result = CliRunner().invoke(svc_train, [*common, "--max-steps", "1", "--distill", str(reference),
                                            "--distill-weight", "2.5"])
    assert result.exit_code == 0, result.output
    saved = json.loads((run / "config.json").read_text())
    assert (saved["distill"], saved["distill_weight"]) == (str(reference.resolve()), 2.5)
    result = CliRunner().invoke(svc_train, [*common, "--max-steps", "2", "--resume", str(run)])
    assert result.exit_code == 0, result.output
    saved = json.loads((run / "config.json").read_text())
    assert (saved["distill"], saved["distill_weight"]) == (str(reference.resolve()), 2.5)


def test_svc_train_refuses_a_missing_or_unreadable_reference_in_one_line(tmp_path, tiny_lfw):
    common = ["--lfw-parts", "--occlude", "--lfw-root", str(tiny_lfw), "--out", str(tmp_path / "run"),
              "--num-workers", "0", "--no-progress"]
    result = CliRunner().invoke(svc_train, [*common, "--distill", str(tmp_path / "missing.onnx")])
    assert_one_error_line(result, "missing.onnx")
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not a model")
    result = CliRunner().invoke(svc_train, [*common, "--distill", str(garbage)])
    assert_one_error_line(result, "garbage.onnx")


def test_svc_train_refuses_a_reference_of_another_class_count_before_training(tmp_path, tiny_lfw):
    two_classes = tmp_path / "two.ckpt"
    model = create_model("faceoccnet", num_classes=2, width=0.125)
    save_checkpoint(two_classes, {"model": model.state_dict(),
                                  "config": {"model": "faceoccnet", "num_classes": 2, "width": 0.125}})
    run = tmp_path / "run"
    result = CliRunner().invoke(svc_train, ["--lfw-parts", "--occlude", "--lfw-root", str(tiny_lfw), "--out", str(run),
                                            "--image-size", "32", "--width", "0.125", "--num-workers", "0",
                                            "--no-progress", "--distill", str(two_classes)])
    assert_one_error_line(result, "two.ckpt", "answers 2 classes", "trains 3 classes")
    assert not (run / "checkpoints").exists()
