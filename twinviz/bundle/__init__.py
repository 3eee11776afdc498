"""Model bundles: a model directory's weights and the sidecars that belong to them, checked as one
(:class:`ModelBundle`, :mod:`.bundle`); their provenance and the in-sample guards
(:mod:`.provenance`); fitting the twin metric of a trained model (:mod:`.fit`).

Names are imported on first use (PEP 562), so ``twinviz.bundle.provenance`` — which
``TrainConfig.validate`` needs — does not import torch.
"""
from twinviz.lazy import lazy_names

_HOMES = {"RANK_CHOICES": "bundle", "BundleError": "bundle", "ModelBundle": "bundle", "resolve_model_dir": "bundle"}

__all__ = sorted(_HOMES)

__getattr__, __dir__ = lazy_names(__name__, _HOMES)
