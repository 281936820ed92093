"""Scoring, running and exporting trained models.

Modules:
    train.evaluation.metrics: the dataset confusion matrix and the component-count sparsity error.
    train.evaluation.evaluate: scores on LFW Part Labels (beside the published ones) and on label stores (svc-eval).
    train.evaluation.inference: any model file (checkpoint, TorchScript, ONNX) as a segmenter of uint8 images.
    train.evaluation.predict: masks and overlays for photos and videos (svc-predict).
    train.evaluation.export: TorchScript and ONNX copies usable as labelgen teachers (svc-export).
"""
