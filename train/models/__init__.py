"""Segmentation models and their registry.

Example:
    >>> from train.models import create_model
    >>> net = create_model("faceoccnet", num_classes=3, width=0.25)
"""

from train.models.registry import create_model, list_models, register_model

# Imported for its side effect: registering "faceoccnet".
from train.models.faceoccnet import FaceOccNet, faceoccnet_channels, image_to_tensor, normalize_image  # noqa: E402
from train.models.flip import FlipAveraged, flip_averaged_logits  # noqa: E402

__all__ = [
    "FaceOccNet",
    "FlipAveraged",
    "create_model",
    "faceoccnet_channels",
    "flip_averaged_logits",
    "list_models",
    "image_to_tensor",
    "normalize_image",
    "register_model",
]
