"""Tests for train.engine (the trainer): a tiny run's outputs, exact resume, RNG checkpointing and DDP."""

import json
import os
import random
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

from train.checkpoint import load_checkpoint, model_from_checkpoint, rng_state, set_rng_state
from train.config import TrainConfig
from train.datasets.synthetic import make_synthetic_lfw, make_synthetic_store
from train.distributed import select_device
from train.engine.logs import read_metrics
from train.engine.trainer import train

TINY = dict(width=0.125, batch_size=8, num_workers=0, val_fraction=0.25, log_every=5, progress=False)
STEPS_PER_EPOCH, VAL_IMAGES = 23, 63


pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("engine") / "labels.zarr"
    # 4 chunks of 64 rows with 61, 63, 64, 63 OK rows; --val-fraction 0.25 holds out 63 of the 251
    # OK images, which is chunk 1 whole, so an epoch is (61 + 64 + 63) // 8 = 23 batches of 8.
    make_synthetic_store(path, count=256, size=32, shard_size=64, bad_rows=[1, 40, 41, 90, 200])
    return path


@pytest.mark.parametrize("fraction", [0.05, 0.4])
def test_val_fraction_holds_out_that_share_of_the_ok_images(store, tmp_path, fraction):
    summary = train(TrainConfig(out=str(tmp_path / "run"), labels=str(store), max_steps=1,
                                **{**TINY, "val_fraction": fraction}))
    assert summary["validation"]["pixels"] == round(fraction * 251) * 32 * 32  # 13 and 100, not whole 64-row chunks


def test_tiny_run_writes_checkpoints_metrics_and_plot(store, tmp_path):
    out = tmp_path / "run"
    summary = train(TrainConfig(out=str(out), labels=str(store), epochs=2, max_steps=26, **TINY))
    assert summary["step"] == 26 and summary["epoch"] == 1
    names = {p.name for p in (out / "checkpoints").iterdir()}
    assert {"last.ckpt", "best.ckpt", "epoch_001.ckpt"} <= names
    payload = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)
    assert payload["step"] == 26 and payload["epoch"] == 1 and payload["batch_in_epoch"] == 26 - STEPS_PER_EPOCH
    assert {"model", "optimizer", "scheduler", "scaler", "rng", "config"} <= set(payload)
    assert payload["config"]["width"] == 0.125
    records = read_metrics(out / "metrics.jsonl")
    train_steps = [r["step"] for r in records if r["kind"] == "train"]
    assert train_steps == [5, 10, 15, 20, 23, 25]  # every 5 steps and at the epoch end
    val = [r for r in records if r["kind"] == "val"]
    assert [r["step"] for r in val] == [STEPS_PER_EPOCH, 26] and 0 <= val[0]["mean_recall"] <= 1
    assert val[0]["pixels"] == VAL_IMAGES * 32 * 32
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((out / "config.json").read_text())["labels"] == str(store)
    model = model_from_checkpoint(out / "checkpoints" / "last.ckpt")
    assert model(torch.zeros(1, 3, 32, 32)).shape == (1, 3, 32, 32)


def test_resume_mid_epoch_matches_an_uninterrupted_run(store, tmp_path):
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    train(TrainConfig(out=str(whole), labels=str(store), epochs=2, max_steps=30, **TINY))
    train(TrainConfig(out=str(parts), labels=str(store), epochs=2, max_steps=9, **TINY))
    assert load_checkpoint(parts)["step"] == 9
    train(TrainConfig(out=str(parts), labels=str(store), epochs=2, max_steps=30, **TINY), resume=str(parts))
    a, b = load_checkpoint(whole), load_checkpoint(parts)
    assert a["step"] == b["step"] == 30
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key
    for index, state in a["optimizer"]["state"].items():
        assert torch.equal(state["exp_avg_sq"], b["optimizer"]["state"][index]["exp_avg_sq"])
    assert a["scheduler"] == b["scheduler"]
    assert torch.equal(a["rng"][0]["torch"], b["rng"][0]["torch"])
    # The log holds each step once: the interrupted run's validation at step 9 stays, nothing repeats.
    steps = [(r["kind"], r["step"]) for r in read_metrics(parts / "metrics.jsonl")]
    assert len(steps) == len(set(steps))


def test_resume_refuses_another_architecture(store, tmp_path):
    out = tmp_path / "run"
    train(TrainConfig(out=str(out), labels=str(store), epochs=1, max_steps=1, **TINY))
    config = TrainConfig(out=str(out), labels=str(store), epochs=1, max_steps=2, **{**TINY, "width": 0.25})
    with pytest.raises(ValueError, match="width"):
        train(config, resume=str(out))


def test_rng_state_round_trips_through_weights_only_load(tmp_path):
    torch.manual_seed(1), np.random.seed(2), random.seed(3)
    np.random.randn(), random.gauss(0, 1)  # leave cached Gaussians behind
    torch.save(rng_state(), tmp_path / "rng.pt")
    expected = (torch.rand(3), np.random.randn(3), random.gauss(0, 1), random.random())
    torch.manual_seed(9), np.random.seed(9), random.seed(9)
    set_rng_state(torch.load(tmp_path / "rng.pt", weights_only=True))
    got = (torch.rand(3), np.random.randn(3), random.gauss(0, 1), random.random())
    assert torch.equal(got[0], expected[0]) and np.array_equal(got[1], expected[1]) and got[2:] == expected[2:]


def test_device_auto_selection_on_this_machine():
    expected = "cuda" if torch.cuda.is_available() else (
        "mps" if torch.backends.mps.is_available() else "cpu")
    assert select_device("auto").type == expected
    assert select_device("cpu").type == "cpu"


def test_lfw_parts_training_with_blob_targets(tmp_path):
    root = make_synthetic_lfw(tmp_path / "lfw", {"train": 8, "val": 4}, size=64)
    config = TrainConfig(out=str(tmp_path / "run"), lfw_parts=True, lfw_root=str(root), image_size=32,
                         epochs=1, **{**TINY, "batch_size": 4})
    summary = train(config)
    assert summary["step"] == 2  # 8 images / batch 4
    assert summary["validation"]["pixels"] == 4 * 32 * 32  # the whole val split, once


def test_loss_falls_on_a_learnable_store(store, tmp_path):
    out = tmp_path / "run"
    train(TrainConfig(out=str(out), labels=str(store), epochs=2, **TINY))
    losses = [r["loss"] for r in read_metrics(out / "metrics.jsonl") if r["kind"] == "train"]
    assert losses[-1] < 0.8 * losses[0]


def test_ddp_two_processes_on_cpu_gloo(store, tmp_path):
    torchrun = shutil.which("torchrun") or os.path.join(os.path.dirname(sys.executable), "torchrun")
    out = tmp_path / "ddp"
    command = [torchrun, "--nproc_per_node", "2", "--master_port", str(29400 + os.getpid() % 500),
               "-m", "train.cli", "--labels", str(store), "--out", str(out), "--width", "0.125",
               "--batch-size", "8", "--max-steps", "2", "--num-workers", "0", "--val-fraction", "0.25",
               "--log-every", "1", "--device", "cpu", "--no-progress"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    payload = load_checkpoint(out)
    assert payload["step"] == 2 and payload["world_size"] == 2 and len(payload["rng"]) == 2
    # Ranks were seeded apart (their dropout differs), and both RNG streams were saved.
    assert not torch.equal(payload["rng"][0]["torch"], payload["rng"][1]["torch"])
    records = read_metrics(out / "metrics.jsonl")
    assert [r["step"] for r in records if r["kind"] == "train"] == [1, 2]
    # Each rank scores its share of the validation chunks; the summed matrix covers each image once.
    assert [r["pixels"] for r in records if r["kind"] == "val"] == [VAL_IMAGES * 32 * 32]


def test_mixed_precision_on_cpu_uses_bfloat16_without_loss_scaling(store, tmp_path):
    from train.distributed import autocast_dtype
    from train.engine.trainer import Trainer

    assert autocast_dtype(torch.device("cpu")) == torch.bfloat16
    assert autocast_dtype(torch.device("cuda", 0)) == torch.float16
    config = TrainConfig(out=str(tmp_path / "bf16"), labels=str(store), epochs=1, max_steps=5, amp=True,
                         device="cpu", **TINY)
    trainer = Trainer(config)
    assert trainer.amp and not trainer.scaler.is_enabled()
    summary = trainer.fit()
    losses = [r["loss"] for r in read_metrics(tmp_path / "bf16" / "metrics.jsonl") if r["kind"] == "train"]
    assert summary["step"] == 5 and losses and all(np.isfinite(losses))
    reference = train(TrainConfig(out=str(tmp_path / "fp32"), labels=str(store), epochs=1, max_steps=5,
                                  device="cpu", **TINY))
    # Same data, same init: bfloat16 changes the numbers a little, not the outcome.
    assert abs(summary["validation"]["pixel_acc"] - reference["validation"]["pixel_acc"]) < 0.05


def test_init_weights_starts_from_a_checkpoint_with_a_fresh_optimiser(store, tmp_path):
    from train.engine.trainer import Trainer

    first = tmp_path / "first"
    train(TrainConfig(out=str(first), labels=str(store), epochs=1, max_steps=3, **TINY))
    saved = load_checkpoint(first)
    second = Trainer(TrainConfig(out=str(tmp_path / "second"), labels=str(store), epochs=1, lr=1e-4,
                                 init_weights=str(first), **TINY))
    for name, tensor in second.model.state_dict().items():
        assert torch.equal(tensor, saved["model"][name]), name
    assert second.step == 0 and second.optimizer.param_groups[0]["lr"] == 1e-4
    assert not second.optimizer.state, "a fresh optimiser: no Adam moments carried over"
    with pytest.raises(ValueError, match="width"):
        Trainer(TrainConfig(out=str(tmp_path / "third"), labels=str(store), init_weights=str(first),
                            **{**TINY, "width": 0.25}))


def test_loader_workers_left_unset_are_chosen_by_the_device_and_recorded(store, tmp_path):
    import torch

    from train.config import default_loader_workers

    out = tmp_path / "run"
    train(TrainConfig(out=str(out), labels=str(store), max_steps=1, device="cpu", **{**TINY, "num_workers": None}))
    assert json.loads((out / "config.json").read_text())["num_workers"] == default_loader_workers("cpu", 2) == 2
    assert torch.load(out / "checkpoints" / "last.ckpt", weights_only=False)["config"]["num_workers"] == 2
    # Resumed without the option, a run keeps its own count: the order a store is read in depends on it.
    other = tmp_path / "other"
    train(TrainConfig(out=str(other), labels=str(store), max_steps=1, device="cpu", **TINY))  # num_workers 0
    train(TrainConfig(out=str(other), labels=str(store), max_steps=2, device="cpu", **{**TINY, "num_workers": None}),
          resume=str(other))
    assert json.loads((other / "config.json").read_text())["num_workers"] == 0
