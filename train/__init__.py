"""Training side of structure-via-consensus: models, losses, metrics, data.

Subpackages:
    train.models: FaceOccNet and a small name -> constructor registry.
    train.losses: the structure-via-consensus loss and a cross-entropy baseline.
    train.metrics: confusion-matrix metrics and the component-count sparsity error.
    train.lfw_parts: reader for the LFW Part Labels evaluation set.
"""
