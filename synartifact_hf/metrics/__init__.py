"""The evaluate metrics of synartifact-hf, as Hub-ready evaluate module folders.

Each folder (``artifact_f1/``, ``artifact_iou/``) holds the evaluate module, its card, a Spaces
``app.py`` and ``requirements.txt``; it only needs evaluate, datasets and numpy, so the same folder works
when pushed to the Hub. This package only tells you where they are (importing it loads nothing heavy):

>>> import os
>>> os.path.basename(path("artifact_f1"))
'artifact_f1'
>>> path("accuracy")
Traceback (most recent call last):
...
KeyError: "Unknown synartifact-hf metric 'accuracy'; available metrics are ['artifact_f1', 'artifact_iou']"

Use it as ``evaluate.load(synartifact_hf.metrics.path("artifact_f1"))``, or run :func:`install` once
(``synartifact-hf install-metrics``; the README's set-up does it) and then ``evaluate.load("artifact_f1")``
by bare name, offline too: see :mod:`synartifact_hf.metrics.evaluate_cache`.
"""

from __future__ import annotations

import os

__all__ = ["METRICS", "InstallResult", "install", "path", "uninstall"]

METRICS: tuple[str, ...] = ("artifact_f1", "artifact_iou")


def path(name: str) -> str:
    """Absolute path of the evaluate module folder of metric ``name`` (give it to ``evaluate.load``)."""
    if name not in METRICS:
        raise KeyError(f"Unknown synartifact-hf metric {name!r}; available metrics are {list(METRICS)}")
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), name)


from .evaluate_cache import InstallResult, install, uninstall  # noqa: E402  (it needs METRICS and path)
