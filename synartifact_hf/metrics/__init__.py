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

Use it as ``evaluate.load(synartifact_hf.metrics.path("artifact_f1"))``.
"""

from __future__ import annotations

import os

__all__ = ["METRICS", "path"]

METRICS: tuple[str, ...] = ("artifact_f1", "artifact_iou")


def path(name: str) -> str:
    """Absolute path of the evaluate module folder of metric ``name`` (give it to ``evaluate.load``)."""
    if name not in METRICS:
        raise KeyError(f"Unknown synartifact-hf metric {name!r}; available metrics are {list(METRICS)}")
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), name)
