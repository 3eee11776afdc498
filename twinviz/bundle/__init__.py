"""Model bundles: a model directory's weights and the sidecars that belong to them, checked as one
(:class:`ModelBundle`, :mod:`.bundle`); their provenance and the in-sample guards
(:mod:`.provenance`); fitting the twin metric of a trained model (:mod:`.fit`).

Names are imported on first use (PEP 562), so ``twinviz.bundle.provenance`` — which
``TrainConfig.validate`` needs — does not import torch.
"""
from importlib import import_module

_HOMES = {"RANK_CHOICES": "bundle", "BundleError": "bundle", "ModelBundle": "bundle", "resolve_model_dir": "bundle"}

__all__ = sorted(_HOMES)


def __getattr__(name):
    if name in _HOMES:
        return getattr(import_module(f".{_HOMES[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return __all__
