"""Distillation: a student matches a teacher's per-pixel class probabilities.

Used to train a robust teacher (``svc-train --distill MODEL``): the reference model
sees each training image as the data set made it, the student sees it after the
photometric augmentation, and the student is pulled towards the reference's answer on
the clean image. So the student keeps what the reference gets right on clean photos
and learns to give the same answer on degraded ones; a reference that averages two
flipped passes also teaches a single-pass student that average.

Example:
    >>> import torch
    >>> teacher = torch.softmax(torch.randn(2, 3, 8, 8), 1)
    >>> float(distillation_loss(teacher.log(), teacher)) < 1e-6  # a student that agrees costs nothing
    True
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def distillation_loss(student_logits: torch.Tensor, teacher_probs: torch.Tensor) -> torch.Tensor:
    """Mean over pixels of KL(teacher || student), in nats.

    Args:
        student_logits: ``N x C x H x W`` logits of the student.
        teacher_probs: ``N x C x H x W`` class probabilities of the teacher (each pixel sums to 1).

    Returns:
        A scalar: ``sum_c p log(p / q)`` averaged over the ``N x H x W`` pixels, where ``p`` is the
        teacher's and ``q`` the student's softmax. Zero exactly when they agree; its gradient in the
        logits is ``(q - p) / (N H W)``.

    Raises:
        ValueError: The two shapes differ.
    """
    if student_logits.shape != teacher_probs.shape:
        raise ValueError(f"student logits {tuple(student_logits.shape)} and teacher probabilities "
                         f"{tuple(teacher_probs.shape)} differ in shape")
    log_student = F.log_softmax(student_logits, dim=1)
    # xlogy: a class the teacher gives probability 0 adds 0, not 0 * log 0 = nan.
    per_pixel = (torch.xlogy(teacher_probs, teacher_probs) - teacher_probs * log_student).sum(1)
    return per_pixel.mean()

