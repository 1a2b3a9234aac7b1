"""The ``artifact_iou`` evaluate module folder (Hub-ready). Load it with
``evaluate.load(synartifact_hf.metrics.path("artifact_iou"))``; its arithmetic is in ``box_matching.py``."""
