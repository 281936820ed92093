"""svc-train's options for the paper's LFW protocol (issue 22): the consensus loss's official reductions
with class blobs, dropout and flips off ("without +reg"), a flat learning rate, the last epoch as the
result, the Eq. 5 control; each recorded in the run and kept by ``--resume``; and the class order a
fine-tune from pseudo-labels relies on.

The runs here are tiny (synthetic LFW-like faces at 32 px, width 0.125): they check what each option
does to the run, not how well it trains.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from train.checkpoint import load_checkpoint
from train.cli import main as svc_train
from train.config import RESUMED_OPTIONS, TrainConfig, resolve_defaults
from train.datasets.lfw_parts import CLASS_NAMES, LFWPartsTrain, collate_blobs
from train.datasets.synthetic import make_synthetic_lfw
from train.distributed import init_distributed
from train.engine.trainer import Trainer
from train.evaluation.evaluate import STORE_CLASSES
from train.losses import (BlobCrossEntropyLoss, ConsensusLoss, blobs_from_class_maps, class_blobs_from_class_map,
                          consensus_loss)
from train.losses.blobs import OCCLUSION_CLASS
from train.models.faceoccnet import DEFAULT_DROPOUT

pytestmark = pytest.mark.usefixtures("torch_one_thread")

PAPER_OPTIONS = ["--lfw-split", "train+val", "--blobs", "classes", "--consensus-mode", "official", "--dropout", "0",
                 "--no-flip", "--schedule", "flat", "--select", "last"]
PAPER_VALUES = {"lfw_split": "train+val", "blobs": "classes", "consensus_mode": "official", "dropout": 0.0,
                "flip": False, "schedule": "flat", "select": "last"}


@pytest.fixture
def tiny_lfw(tmp_path):
    return make_synthetic_lfw(tmp_path / "lfw", {"train": 4, "val": 2}, size=64)


def tiny_options(root, out) -> list[str]:
    return ["--lfw-parts", "--lfw-root", str(root), "--out", str(out), "--image-size", "32", "--width", "0.125",
            "--batch-size", "2", "--num-workers", "0", "--no-progress", "--photometric", "0"]


def tiny_config(root, out, **options) -> TrainConfig:
    return TrainConfig(out=str(out), lfw_parts=True, lfw_root=str(root), image_size=32, width=0.125, batch_size=2,
                       num_workers=0, progress=False, photometric=0.0, device="cpu", **options)


# -- defaults, and what --resume keeps ------------------------------------------------------------------------

def test_new_runs_get_todays_defaults_and_old_runs_resume_as_they_were_trained():
    new = TrainConfig(out="x")
    resolve_defaults(new, None)
    assert (new.consensus_mode, new.blobs, new.dropout, new.flip, new.schedule, new.select) == (
        "default", "components", DEFAULT_DROPOUT, True, "plateau", "best")
    old = TrainConfig(out="x")
    resolve_defaults(old, {"width": 1.0})  # a checkpoint from before these options
    assert {key: getattr(old, key) for key in RESUMED_OPTIONS} == {
        key: old_run for key, (_, old_run) in RESUMED_OPTIONS.items()}
    kept = TrainConfig(out="x")
    resolve_defaults(kept, PAPER_VALUES)
    assert {key: getattr(kept, key) for key in PAPER_VALUES if key != "lfw_split"} == {
        key: value for key, value in PAPER_VALUES.items() if key != "lfw_split"}
    asked = TrainConfig(out="x", dropout=0.2, flip=True)  # given again: wins over the checkpoint's
    resolve_defaults(asked, PAPER_VALUES)
    assert (asked.dropout, asked.flip, asked.select) == (0.2, True, "last")


def test_the_dropout_default_is_faceoccnets_own():
    from train.models import create_model

    assert create_model("faceoccnet", width=0.125).dropout.p == DEFAULT_DROPOUT == 0.2


def test_unknown_choices_are_refused():
    with pytest.raises(ValueError, match="schedule must be one of plateau, flat"):
        resolve_defaults(TrainConfig(out="x", schedule="cosine"), None)


def test_svc_train_records_the_options_and_resume_keeps_them(tmp_path, tiny_lfw):
    run = tmp_path / "run"
    result = CliRunner().invoke(svc_train, [*tiny_options(tiny_lfw, run), *PAPER_OPTIONS, "--max-steps", "1"])
    assert result.exit_code == 0, result.output
    saved = json.loads((run / "config.json").read_text())
    assert {key: saved[key] for key in PAPER_VALUES} == PAPER_VALUES
    result = CliRunner().invoke(svc_train, [*tiny_options(tiny_lfw, run), "--lfw-split", "train+val",
                                            "--max-steps", "2", "--resume", str(run)])
    assert result.exit_code == 0, result.output
    saved = json.loads((run / "config.json").read_text())
    assert {key: saved[key] for key in PAPER_VALUES} == PAPER_VALUES
    assert load_checkpoint(run)["config"]["consensus_mode"] == "official"


# -- what each option does to the run -------------------------------------------------------------------------

def test_paper_options_reach_the_model_loss_and_data(tmp_path, tiny_lfw):
    trainer = Trainer(tiny_config(tiny_lfw, tmp_path / "run", **PAPER_VALUES), init_distributed("cpu"))
    assert trainer.model.dropout.p == 0.0
    assert isinstance(trainer.loss_fn, ConsensusLoss) and trainer.loss_fn.mode == "official"
    assert trainer.data.train_set.hflip is False and trainer.data.train_set.blobs == "classes"
    assert len(trainer.data.train_set) == 6  # train + val
    assert trainer.data.val_set is None  # flat schedule, last epoch: nothing reads validation
    default = Trainer(tiny_config(tiny_lfw, tmp_path / "default", loss="ce-blob"), init_distributed("cpu"))
    assert default.model.dropout.p == DEFAULT_DROPOUT and isinstance(default.loss_fn, BlobCrossEntropyLoss)
    assert default.data.train_set.hflip is True and default.data.val_set is not None


def test_flat_schedule_keeps_the_rate_where_the_plateau_drops_it(tmp_path, tiny_lfw):
    stalled = {"mean_recall": 0.5}
    rates = {}
    for schedule in ("plateau", "flat"):
        trainer = Trainer(tiny_config(tiny_lfw, tmp_path / schedule, schedule=schedule, lr_patience=0, lr=1e-3),
                          init_distributed("cpu"))
        for _ in range(3):
            trainer._next_epoch(stalled)
        rates[schedule] = trainer.optimizer.param_groups[0]["lr"]
    assert rates["flat"] == 1e-3
    assert rates["plateau"] == pytest.approx(1e-5)  # two drops of 10x after the first epoch set the best


def test_select_last_makes_every_whole_epoch_the_result(tmp_path, tiny_lfw):
    worse = [{"mean_recall": 0.9}, {"mean_recall": 0.1}]
    for select, expected in (("best", [True, False]), ("last", [True, True])):
        trainer = Trainer(tiny_config(tiny_lfw, tmp_path / select, select=select), init_distributed("cpu"))
        assert [trainer._next_epoch(scores) for scores in worse] == expected


def test_a_fixed_epoch_run_saves_its_last_epoch_as_best_without_validating(tmp_path, tiny_lfw):
    run = tmp_path / "run"
    result = CliRunner().invoke(svc_train, [*tiny_options(tiny_lfw, run), *PAPER_OPTIONS, "--epochs", "2"])
    assert result.exit_code == 0, result.output
    best, last = (load_checkpoint(run / "checkpoints" / name) for name in ("best.ckpt", "last.ckpt"))
    assert best["step"] == last["step"] == 6 and best["epoch"] == 2  # 6 faces, batch 2: 3 steps an epoch
    assert torch.equal(best["model"]["classifier.1.weight"], last["model"]["classifier.1.weight"])
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert records and all(record["kind"] == "train" for record in records)
    assert {record["lr"] for record in records} == {1e-3}


@pytest.mark.parametrize("options,message", [
    (["--consensus-mode", "official"], "--consensus-mode official needs --blobs classes"),
    (["--consensus-mode", "official", "--blobs", "components"], "--consensus-mode official needs --blobs classes"),
    (["--loss", "ce", "--consensus-mode", "official", "--blobs", "classes"], "this run's loss is ce"),
    (["--occlude", "--blobs", "classes"], "blobs=classes chooses LFW Part Labels blobs"),
])
def test_pairings_that_cannot_hold_are_one_error_line(tmp_path, tiny_lfw, options, message):
    result = CliRunner().invoke(svc_train, [*tiny_options(tiny_lfw, tmp_path / "run"), *options])
    assert result.exit_code == 1 and "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and message in lines[0], result.output


# -- class blobs, the official reductions, and the class order ------------------------------------------------

def test_class_blobs_are_whole_class_masks_whose_id_is_the_class(tmp_path, tiny_lfw):
    label = np.array([[2, 0, 2], [1, 0, 0], [2, 1, 1]])  # hair in two pieces
    ids, table = class_blobs_from_class_map(label, 3)
    assert ids.tolist() == label.tolist() and table.tolist() == [0, 1, 2]
    with pytest.raises(ValueError, match="class 3 is outside the 3 classes"):
        class_blobs_from_class_map(label + 1, 3)
    data = LFWPartsTrain(tiny_lfw, "train", size=32, hflip=False, blobs="classes")
    plain = LFWPartsTrain(tiny_lfw, "train", size=32, hflip=False)
    images, blob_ids, blob_class = collate_blobs([data[i] for i in range(4)])
    assert blob_class.tolist() == [[0, 1, 2]] * 4
    for i in range(4):
        assert torch.equal(blob_ids[i], plain.base[i][1])


def release_consensus_loss(logits: torch.Tensor, blobs: torch.Tensor, target: torch.Tensor, alpha: float,
                           beta: float) -> torch.Tensor:
    """The reductions of the authors' released StructureConsensuLossFunction (reduce_pixel='idx'), written
    out as a float64 loop: for each distinct value of the batch's blob map, the mean over the N images of
    -log(blob mean)[label] (0 where the image lacks the blob), plus KL(mean || p) summed over all its
    pixels and classes, divided by C x its pixel count; then the mean over the distinct values."""
    prob = torch.softmax(logits.double(), dim=1)
    n, c = prob.shape[:2]
    terms = []
    for value in torch.unique(blobs):
        mask = blobs == value
        labels = torch.unique(target[mask])
        assert len(labels) == 1, f"blob {int(value)} holds classes {labels.tolist()}: the release asserts one"
        label_term, kl_sum = 0.0, 0.0
        for i in range(n):
            if mask[i].any():
                p = prob[i][:, mask[i]]  # C x pixels
                m = p.mean(dim=1, keepdim=True)
                label_term = label_term - torch.log(m[int(labels[0]), 0])
                kl_sum = kl_sum + (m * (torch.log(m) - torch.log(p))).sum()
        terms.append(alpha * label_term / n + beta * kl_sum / (c * mask.sum()))
    return sum(terms) / len(terms)


def lfw_like_batch(seed: int, n: int = 3, size: int = 12) -> torch.Tensor:
    """Class maps with background in several pieces and hair in some images only."""
    rng = np.random.default_rng(seed)
    maps = np.zeros((n, size, size), dtype=np.int64)
    for i in range(n):
        maps[i, 3:9, 3:9] = 1
        if i != 1:
            maps[i, 2:4, 2:10] = 2
        maps[i, 0, rng.integers(0, size)] = 2  # a stray hair pixel
    maps[0, :, 6] = 1  # splits image 0's background in two
    return torch.from_numpy(maps)


@pytest.mark.parametrize("seed", [0, 1])
def test_official_mode_with_class_blobs_equals_the_releases_reductions(seed):
    classes = lfw_like_batch(seed)
    logits = torch.randn(len(classes), 3, *classes.shape[1:], generator=torch.Generator().manual_seed(seed),
                         dtype=torch.float64) * 2
    ids, table = zip(*(class_blobs_from_class_map(m, 3) for m in classes))
    ours = consensus_loss(logits, torch.from_numpy(np.stack(ids)), torch.from_numpy(table[0]), mode="official")
    release = release_consensus_loss(logits, classes, classes, alpha=10.0, beta=5.0)
    assert ours.item() == pytest.approx(release.item(), rel=1e-9)


def test_component_ids_mean_other_classes_in_other_images():
    # Why official mode refuses components: raw id 1 is a background piece in image 0 and the face in image 1,
    # so grouping by raw id over the batch (the release's loop) mixes classes; the release would assert.
    classes = lfw_like_batch(0)
    ids, table = blobs_from_class_maps(classes)
    assert table[0, 1].item() == 0 and table[1, 1].item() == 1
    with pytest.raises(AssertionError, match="holds classes"):
        release_consensus_loss(torch.zeros(len(classes), 3, *classes.shape[1:]), ids, classes, 10.0, 5.0)


def test_a_fine_tune_from_pseudo_labels_maps_occlusion_to_hair():
    # The student's classes (background / face / occlusion) meet LFW's (background / face / hair) index by
    # index: a fine-tune starts the hair logit from the occlusion logit.
    assert STORE_CLASSES[:2] == CLASS_NAMES[:2] == ("background", "face")
    assert STORE_CLASSES[OCCLUSION_CLASS] == "occlusion" and CLASS_NAMES[OCCLUSION_CLASS] == "hair"
    assert len(STORE_CLASSES) == len(CLASS_NAMES) == TrainConfig(out="x").num_classes
