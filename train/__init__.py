"""Training side of structure-via-consensus: FaceOccNet, its losses and data, training and evaluation.

Modules and subpackages:
    train.config: the settings of a training run (saved in its checkpoints and config.json).
    train.distributed: the device, and the process's place in a torchrun (DDP) job.
    train.checkpoint: weights-only checkpoints, written by the engine and read by evaluation and export.
    train.models: FaceOccNet and a small name -> constructor registry.
    train.losses: the structure-via-consensus loss and cross-entropy baselines.
    train.datasets: the label store, LFW Part Labels (plain and occluded), augmentation, synthetic test data.
    train.engine: the trainer (single process or torchrun DDP), its data, validation, logs and stopping.
    train.evaluation: metrics, LFW Part Labels / store scores, inference, prediction, export.
    train.workflows: student as teacher (label, train, export, relabel).
    train.cli: svc-train, svc-eval, svc-export, svc-predict, svc-loop.
"""
