"""A tiny name -> constructor registry so configs and CLIs can pick a model by name."""

from __future__ import annotations

from typing import Callable

import torch.nn as nn

_MODELS: dict[str, Callable[..., nn.Module]] = {}


def register_model(name: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator registering a model constructor under ``name``.

    Args:
        name: Registry key; case-insensitive.

    Returns:
        A decorator that stores the constructor and returns it unchanged.

    Raises:
        ValueError: If ``name`` is already taken (silently overwriting would make
            the model a config builds depend on import order).
    """
    key = name.lower()

    def decorator(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if key in _MODELS:
            raise ValueError(f"model {name!r} is already registered")
        _MODELS[key] = fn
        return fn

    return decorator


def create_model(name: str = "faceoccnet", num_classes: int = 3, width: float = 1.0, **kw) -> nn.Module:
    """Builds a registered model.

    Args:
        name: Registry key (see :func:`list_models`).
        num_classes: Number of output logit channels K.
        width: Channel multiplier; 1.0 is the published size.
        **kw: Extra keyword arguments forwarded to the constructor.

    Returns:
        The freshly initialised model.

    Raises:
        KeyError: If ``name`` is not registered.
    """
    key = name.lower()
    if key not in _MODELS:
        raise KeyError(f"unknown model {name!r}; available: {', '.join(list_models())}")
    return _MODELS[key](num_classes=num_classes, width=width, **kw)


def list_models() -> list[str]:
    """Returns the sorted names of all registered models."""
    return sorted(_MODELS)
