"""Architectures by name. ``@register_model("name")`` on a factory; ``create_model(name, **kw)``."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from aidetect.errors import ModelLoadError

_MODELS: dict[str, Callable[..., nn.Module]] = {}


def register_model(name: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    def wrap(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _MODELS:
            raise ValueError(f"model {name!r} registered twice")
        _MODELS[name] = factory
        return factory

    return wrap


def list_models() -> list[str]:
    return sorted(_MODELS)


def create_model(name: str, **kwargs: object) -> nn.Module:
    """Build a registered architecture. Unknown names and arguments that do not build it (an
    unknown keyword, a value of the wrong kind) raise :class:`ModelLoadError` with one line."""
    if name not in _MODELS:
        raise ModelLoadError(f"unknown architecture {name!r}; known: {', '.join(list_models())}")
    try:
        return _MODELS[name](**kwargs)
    except (TypeError, ValueError) as exc:
        raise ModelLoadError(f"architecture {name!r} with arguments {kwargs}: {exc}") from exc
