"""Tests for train.datasets.photometric and its svc-train options: seeded, each kind acts, labels and dtype kept."""

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from train.cli import main as svc_train
from train.config import TrainConfig, resolve_defaults
from train.datasets.photometric import DEFAULT_PROBABILITY, DEFAULT_STRENGTH, KINDS, Photometric, expose
from train.datasets.synthetic import make_synthetic_lfw
from train.distributed import init_distributed
from train.engine.training_data import TrainingData

pytestmark = pytest.mark.usefixtures("torch_one_thread")


def faces(count: int = 4, size: int = 48) -> torch.Tensor:
    """Colourful, textured uint8 images with mid-tones, so that every kind has something to change."""
    rng = np.random.default_rng(7)
    ramp = np.linspace(40, 215, size)
    base = np.stack([ramp[None, :].repeat(size, 0), ramp[:, None].repeat(size, 1), 255 - ramp[None, :].repeat(size, 0)])
    images = base[None] + rng.normal(0, 20, (count, 3, size, size))
    return torch.from_numpy(np.clip(images, 0, 255).astype(np.uint8))


def test_same_seed_same_batch_and_another_seed_another():
    augment = Photometric(probability=1.0)
    images = faces(8)
    first, again = augment(images, (0, 3, 0, 5)), augment(images, (0, 3, 0, 5))
    assert torch.equal(first, again)
    assert not torch.equal(first, augment(images, (1, 3, 0, 5)))  # seed
    assert not torch.equal(first, augment(images, (0, 3, 0, 6)))  # batch


def test_the_global_rng_is_left_alone():
    torch.manual_seed(11)
    expected = torch.rand(3)
    torch.manual_seed(11)
    Photometric(probability=1.0)(faces(), 0)
    assert torch.equal(torch.rand(3), expected)  # dropout's stream does not depend on the augmentation


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_changes_the_image_and_keeps_shape_and_dtype(kind):
    images = faces()
    out = Photometric(probability=1.0, kinds=[kind], kind_probability=1.0)(images, 0)
    assert out.dtype == torch.uint8 and out.shape == images.shape
    # At least 1 grey level on average over the batch: far above rounding (0.5), far below any real change.
    assert (out.float() - images.float()).abs().mean() > 1.0


def srgb_exposure_reference(x: np.ndarray, stops: float) -> np.ndarray:
    """IEC 61966-2-1 sRGB to linear, times 2**stops, clipped, and back: written out from the standard."""
    linear = np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4) * 2.0 ** stops
    linear = np.clip(linear, 0, 1)
    return np.where(linear <= 0.0031308, 12.92 * linear, 1.055 * linear ** (1 / 2.4) - 0.055)


@pytest.mark.parametrize("stops", [-2.5, -1.0, 0.0, 0.7, 1.5])
def test_exposure_matches_the_srgb_standard_and_burns_highlights_out(stops):
    x = faces(2).float() / 255
    out = expose(x, torch.full((2,), stops)).numpy()
    # float32 against float64 through two power laws: 1e-5 of the [0, 1] range is far below one grey level.
    np.testing.assert_allclose(out, srgb_exposure_reference(x.double().numpy(), stops), atol=1e-5)
    if stops > 1:  # the light tones pass white and clip: a camera's over-exposure, which gamma never does
        assert (out >= 1 - 1e-6).mean() > 0.1


def test_probability_zero_is_the_identity_and_one_touches_every_image():
    images = faces(6)
    assert torch.equal(Photometric(probability=0.0)(images, 0), images)
    out = Photometric(probability=1.0, kinds=["greyscale"], kind_probability=1.0)(images, 0)
    assert all(not torch.equal(a, b) for a, b in zip(out, images))


def test_about_probability_of_the_images_are_augmented():
    images = faces(400, size=8)
    out = Photometric(probability=0.3, kinds=["greyscale"], kind_probability=1.0)(images, 0)
    changed = (out != images).flatten(1).any(1).float().mean().item()
    assert abs(changed - 0.3) < 0.08  # 400 draws: the binomial's standard deviation is 0.023


def test_harsher_strength_degrades_more():
    images = faces(16)
    mild = Photometric(1.0, strength=0.2, kinds=["jpeg", "low_resolution"], kind_probability=1.0)(images, 0)
    harsh = Photometric(1.0, strength=1.0, kinds=["jpeg", "low_resolution"], kind_probability=1.0)(images, 0)
    error = lambda out: (out.float() - images.float()).abs().mean()  # noqa: E731
    assert error(harsh) > error(mild)


@pytest.mark.parametrize("options,message", [
    (dict(probability=1.5), "probability"), (dict(strength=0.0), "strength"), (dict(strength=2.0), "strength"),
    (dict(kinds=["sepia"]), "unknown photometric kinds"),
])
def test_bad_options_are_refused(options, message):
    with pytest.raises(ValueError, match=message):
        Photometric(**options)


def test_only_uint8_batches_are_accepted():
    with pytest.raises(ValueError, match="uint8"):
        Photometric()(faces().float(), 0)


def test_resolve_defaults_gives_new_runs_photometric_and_keeps_a_resumed_runs_own():
    new = TrainConfig(out="x")
    resolve_defaults(new, None)
    assert (new.photometric, new.photometric_strength) == (DEFAULT_PROBABILITY, DEFAULT_STRENGTH)
    old = TrainConfig(out="x")
    resolve_defaults(old, {"width": 1.0})  # a checkpoint from before the option: it trained without
    assert old.photometric == 0.0
    kept = TrainConfig(out="x")
    resolve_defaults(kept, {"photometric": 0.8, "photometric_strength": 0.5})
    assert (kept.photometric, kept.photometric_strength) == (0.8, 0.5)
    asked = TrainConfig(out="x", photometric=0.0)
    resolve_defaults(asked, {"photometric": 0.8})
    assert asked.photometric == 0.0


@pytest.fixture
def tiny_lfw(tmp_path):
    return make_synthetic_lfw(tmp_path / "lfw", {"train": 4, "val": 2}, size=64)


@pytest.mark.parametrize("occlude", [True, False])
def test_training_batches_are_augmented_and_their_labels_untouched(tmp_path, tiny_lfw, occlude):
    config = TrainConfig(out=str(tmp_path / "run"), lfw_parts=True, occlude=occlude, lfw_root=str(tiny_lfw),
                         image_size=32, width=0.125, batch_size=4, num_workers=0, progress=False, photometric=1.0)
    data = TrainingData(config, init_distributed("cpu"))
    batch = next(iter(data.train_loader(0)))
    augmented = data.augment(batch, 0, 0)
    assert augmented[0].dtype == torch.uint8 and augmented[0].shape == batch[0].shape
    assert not torch.equal(augmented[0], batch[0])
    for before, after in zip(batch[1:], augmented[1:]):
        assert torch.equal(before, after)
    assert torch.equal(data.augment(batch, 0, 0)[0], augmented[0])
    off = TrainingData(TrainConfig(**{**config.to_dict(), "photometric": 0.0}), init_distributed("cpu"))
    assert off.augment(batch, 0, 0) is batch


def test_svc_train_records_the_options_and_resume_keeps_them(tmp_path, tiny_lfw):
    run = tmp_path / "run"
    common = ["--lfw-parts", "--occlude", "--lfw-root", str(tiny_lfw), "--out", str(run), "--image-size", "32",
              "--width", "0.125", "--batch-size", "4", "--num-workers", "0", "--no-progress"]
    result = CliRunner().invoke(svc_train, [*common, "--max-steps", "1", "--photometric", "0.7",
                                            "--photometric-strength", "0.5"])
    assert result.exit_code == 0, result.output
    saved = json.loads((run / "config.json").read_text())
    assert (saved["photometric"], saved["photometric_strength"]) == (0.7, 0.5)
    result = CliRunner().invoke(svc_train, [*common, "--max-steps", "2", "--resume", str(run)])
    assert result.exit_code == 0, result.output
    saved = json.loads((run / "config.json").read_text())
    assert (saved["photometric"], saved["photometric_strength"]) == (0.7, 0.5)


@pytest.mark.parametrize("option,value", [("--photometric", "1.5"), ("--photometric-strength", "0")])
def test_svc_train_refuses_out_of_range_options(tmp_path, option, value):
    result = CliRunner().invoke(svc_train, ["--lfw-parts", "--out", str(tmp_path / "run"), option, value])
    assert result.exit_code == 2 and option in result.output and "Traceback" not in result.output
