"""Declared options: a dataclass field's metadata is the one description of a setting.

``option(default, help=…, choices=…, at_least=…, above=…, limits=…, …)`` makes a dataclass
field whose metadata says everything the tools need: the command line builds its flags from it
(``twinviz train``), the app builds its form widgets from it (the training tab), the run
manager checks launches with it, and docs/training.md's options table is generated from it.

:class:`Architecture` declares the fader network's architecture options once: both
``twinviz.model.ModelConfig`` (saved with a model) and ``twinviz.training.TrainConfig`` (a
run's settings) inherit them. Importing this module imports nothing heavy (no torch).

Metadata keys (all optional but ``help``):

=============  ===========================================================================
help           one line for ``--help``, the form's tooltip and the docs
choices        the allowed values (a tuple)
at_least       hard lower bound (inclusive): below it the value is invalid
above          hard lower bound (exclusive)
limits         (low, high): the range a launch from the run manager / app accepts — beyond
               it a value is a typing mistake (epochs=1e6), not an experiment. For lists:
               the range of each item.
max_items      lists: the most items a launch accepts
flag           the command-line flag (default ``--`` + the name with dashes)
form           "main" (shown up front), "more" (under "More settings") or None (not in the
               form: set by the dataset pickers, the device choice or the run manager)
group          the section it belongs to (see ``GROUPS``); orders ``--help`` and the docs
resumable      a resumed run may change it (runtime settings); the rest come from its config
=============  ===========================================================================
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import MISSING, dataclass

__all__ = ["Architecture", "GROUPS", "check_options", "flag_of", "meta", "option", "options_of"]

GROUPS = ("data", "model", "objective", "optimisation", "runtime")


def option(default=MISSING, *, help: str, factory=None, choices=None, at_least=None, above=None,
           limits=None, max_items=None, flag=None, form="more", group: str | None = None,
           resumable: bool = False):
    """A dataclass field described by its metadata (see the module docstring)."""
    if group is not None and group not in GROUPS:
        raise ValueError(f"group={group!r} is not one of {GROUPS}")
    metadata = {"help": help, "choices": tuple(choices) if choices else None, "at_least": at_least,
                "above": above, "limits": tuple(limits) if limits else None, "max_items": max_items,
                "flag": flag, "form": form, "group": group, "resumable": resumable}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def meta(f: dataclasses.Field, key: str):
    """One metadata value of a field declared with :func:`option` (None when not set)."""
    return f.metadata.get(key)


def flag_of(f: dataclasses.Field) -> str:
    """The command-line flag of a field: ``--latent-dim`` for ``latent_dim`` unless declared."""
    return meta(f, "flag") or "--" + f.name.replace("_", "-")


def options_of(cls) -> list[dataclasses.Field]:
    """The declared options of a dataclass, by group (``GROUPS``) then in declaration order."""
    declared = [f for f in dataclasses.fields(cls) if "help" in f.metadata]
    return sorted(declared, key=lambda f: GROUPS.index(meta(f, "group")) if meta(f, "group") else 0)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_options(values, cls, *, limits: bool = False, names=None) -> list[str]:
    """The problems of ``values`` (an instance of ``cls`` or a dict of its fields) against the
    declared choices and hard bounds — and, with ``limits``, the launch limits too. ``names``
    restricts the check to those fields. Missing fields are not checked."""
    get = values.get if isinstance(values, dict) else (lambda name, default=None: getattr(values, name, default))
    problems = []
    for f in options_of(cls):
        if names is not None and f.name not in names:
            continue
        value = get(f.name, MISSING)
        if value is MISSING:
            continue
        choices, at_least, above = meta(f, "choices"), meta(f, "at_least"), meta(f, "above")
        if choices and value not in choices:
            problems.append(f"{f.name}={value!r} must be one of {choices}")
        if _is_number(value):
            if limits and meta(f, "limits"):  # the launch range lies inside the hard bounds
                low, high = meta(f, "limits")
                if not low <= value <= high:
                    problems.append(f"{f.name}={value} is out of range; allowed {low} … {high}")
            elif at_least is not None and value < at_least:
                problems.append(f"{f.name}={value} must be ≥ {at_least}")
            elif above is not None and not value > above:
                problems.append(f"{f.name}={value} must be > {above}")
        most = meta(f, "max_items")
        if limits and most:
            low, high = meta(f, "limits")
            if not isinstance(value, (list, tuple)) or not 1 <= len(value) <= most or not all(
                    isinstance(w, int) and not isinstance(w, bool) and low <= w <= high for w in value):
                problems.append(f"{f.name}={value!r} must be 1 … {most} layer widths, each {low} … {high}")
    return problems


@dataclass(kw_only=True)
class Architecture:
    """The fader network's architecture (docs/model.md): declared here once, inherited by
    ``ModelConfig`` and ``TrainConfig`` (and so saved flat in both config.json files).
    Keyword-only, like its subclasses, so that inheriting cannot shift positional arguments."""

    latent_dim: int = option(32, help="size of the latent z", at_least=1, limits=(1, 1024),
                             form="main", group="model")
    basis_dim: int = option(256, help="width of the learned linear flux↔basis layers, initialised "
                            "by PCA (0: none)", at_least=0, limits=(0, 8192), group="model")
    basis_trainable: bool = option(False, help="train the PCA basis layers too (slower; off: "
                                   "training runs on precomputed coefficients)", group="model")
    basis_whiten: bool = option(False, help="whiten the basis coefficients (each PCA component "
                                "scaled to unit variance)", group="model")
    residual_degree: int = option(3, help="subtract a per-pixel polynomial of this degree in (Teff, logg), "
                                  "fitted on the training flux, before the basis (0: off)",
                                  at_least=0, limits=(0, 6), group="model")
    conv_channels: int = option(0, help="learned convolutional front end: channels of two 1-D convolutions "
                                "over the residual flux, whose features the encoder sees beside the basis "
                                "coefficients (0: off)", at_least=0, limits=(0, 64), group="model")
    hidden: list[int] = option(factory=lambda: [1024, 512], help="encoder hidden widths after the "
                               "basis, comma-separated (the decoder mirrors them)",
                               limits=(1, 8192), max_items=8, group="model")
    adversary_hidden: list[int] = option(factory=lambda: [256, 256], help="adversary hidden widths, "
                                         "comma-separated", limits=(1, 8192), max_items=8, group="model")
    activation: str = option("silu", help="activation function", choices=("silu", "leaky_relu", "gelu"),
                             group="model")
    adversary_mode: str = option("joint", help="joint: one classifier over all (Teff, logg) bins; "
                                 "separate: one per label", choices=("joint", "separate"), group="model")
    flux_scaling: str = option("global", help="global: per-pixel mean, one scale; pixel: per-pixel "
                               "mean and std", choices=("global", "pixel"), group="model")

    def __post_init__(self):
        self.hidden = [int(h) for h in self.hidden]
        self.adversary_hidden = [int(h) for h in self.adversary_hidden]
