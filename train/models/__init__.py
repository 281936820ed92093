"""Segmentation models and their registry.

Example:
    >>> from train.models import create_model
    >>> net = create_model("faceoccnet", num_classes=3, width=0.25)
"""

from train.models.registry import create_model, list_models, register_model

# Imported for its side effect: registering "faceoccnet".
from train.models.faceoccnet import FaceOccNet, faceoccnet_channels, image_to_tensor, normalize_image  # noqa: E402

__all__ = [
    "FaceOccNet",
    "create_model",
    "faceoccnet_channels",
    "list_models",
    "image_to_tensor",
    "normalize_image",
    "register_model",
]
