"""The ``artifact_f1`` evaluate module folder (Hub-ready). Load it with
``evaluate.load(synartifact_hf.metrics.path("artifact_f1"))``; its arithmetic is in ``multilabel.py``."""
