"""Training and evaluation data, as torch datasets.

Modules:
    train.datasets.store: the pseudo-label store streamed chunk by chunk, and its train / validation split.
    train.datasets.lfw_parts: LFW Part Labels (background / face / hair) for evaluation, validation and training.
    train.datasets.occluded: LFW Part Labels with synthetic occluders pasted on every draw (the teacher's data).
    train.datasets.photometric: photometric augmentation of training batches (colour, exposure, JPEG, blur, noise).
    train.datasets.synthetic: tiny synthetic label stores and LFW-like folders for tests and benchmarks.
"""
