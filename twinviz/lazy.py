"""Names of a package imported on first use (PEP 562), so that importing one light submodule of it
(``twinviz.training.config``, ``twinviz.bundle.provenance``) does not import torch."""
from __future__ import annotations

from importlib import import_module

__all__ = ["lazy_names"]


def lazy_names(package: str, homes: dict[str, str]):
    """(``__getattr__``, ``__dir__``) of a package whose public ``name`` lives in submodule
    ``homes[name]``."""
    names = sorted(homes)

    def __getattr__(name):
        if name in homes:
            return getattr(import_module(f".{homes[name]}", package), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__():
        return names

    return __getattr__, __dir__
