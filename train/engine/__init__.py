"""The training engine: one run of svc-train, in one process or in each DDP process.

Modules:
    train.engine.trainer: :class:`~train.engine.trainer.Trainer` and :func:`~train.engine.trainer.train`, the loop.
    train.engine.training_data: the run's datasets and per-epoch loaders, from its config.
    train.engine.validation: the validation scores the schedule and ``best.ckpt`` follow.
    train.engine.logs: the run's metrics log (JSON lines) and its plot.
    train.engine.stopping: stopping on SIGINT / SIGTERM after the current step, with every step saved.
"""
