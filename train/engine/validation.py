"""Validation during training: the model's scores on the run's validation loader.

One confusion matrix over the whole validation set (summed over the DDP ranks);
its mean recall is what the learning-rate schedule and ``best.ckpt`` follow.
"""

from __future__ import annotations

from typing import Iterable

import torch
import torch.nn as nn

from train.distributed import DistEnv, autocast_dtype, sum_over_ranks
from train.evaluation.metrics import ConfusionMatrix
from train.models import normalize_image


@torch.no_grad()
def validate(model: nn.Module, loader: Iterable, num_classes: int, device: torch.device, amp: bool,
             env: DistEnv = DistEnv()) -> dict:
    """Scores the model on a loader of ``(images, class maps)`` with one confusion matrix.

    In DDP each rank scores its shard and the matrices are summed.
    """
    was_training = model.training
    model.eval()
    cm = ConfusionMatrix(num_classes, ignore_index=None)
    for images, classes in loader:
        with torch.autocast(device_type=device.type, dtype=autocast_dtype(device), enabled=amp):
            logits = model(normalize_image(images.to(device, non_blocking=True)))
        cm.update(logits.argmax(1).cpu(), classes)
    cm.matrix = sum_over_ranks(cm.matrix, env, device)
    model.train(was_training)
    scores = cm.compute()
    return {
        "mean_recall": scores["mean_recall"],
        "miou": scores["miou"],
        "pixel_acc": scores["pixel_acc"],
        "iou": scores["iou"].tolist(),
        "recall": scores["recall"].tolist(),
        "pixels": int(cm.matrix.sum()),
    }
