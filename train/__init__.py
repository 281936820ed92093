"""Training side of structure-via-consensus: models, losses, metrics, data.

Subpackages:
    train.models: FaceOccNet and a small name -> constructor registry.
    train.losses: the structure-via-consensus loss and a cross-entropy baseline.
    train.metrics: confusion-matrix metrics and the component-count sparsity error.
    train.lfw_parts: reader for the LFW Part Labels evaluation set.
    train.data: streaming store reader and LFW blob datasets for training.
    train.engine: the training loop (single process or torchrun DDP).
    train.checkpoint, train.logs: weights-only checkpoints; metrics JSONL and plot.
    train.evaluate: LFW Part Labels scores beside the published reference.
    train.export: TorchScript / ONNX export usable as labelgen teachers.
    train.inference, train.predict: load any model form; segment photos and videos.
    train.synthetic: tiny synthetic stores and LFW-like folders for tests.
    train.cli: svc-train, svc-eval, svc-export, svc-predict.
"""
