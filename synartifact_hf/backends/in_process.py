"""The classifier in this process: ``pipeline("artifact-classification")`` behind the backend seam."""

from __future__ import annotations

import json
from pathlib import Path

from . import ClassifierBackend

__all__ = ["InProcessClassifier", "model_identity"]


def model_identity(name_or_path: str) -> str:
    """A Hub id as it is, a local folder by its name (no absolute paths in reports and apps)."""
    path = Path(name_or_path)
    return path.name if path.is_absolute() or path.is_dir() else name_or_path


class InProcessClassifier(ClassifierBackend):
    """Wraps an ``artifact-classification`` pipeline; ``classify`` is one pipeline call with ``batch_size``."""

    supports_scores = True

    def __init__(self, pipeline, *, batch_size: int = 8, max_new_tokens: int | None = None,
                 instruction: str | None = None, return_scores: bool = False):
        from ..prompts import classification_instruction

        self.pipeline = pipeline
        self.batch_size = batch_size
        self.max_new_tokens = max_new_tokens
        self.instruction = instruction if instruction is not None else classification_instruction()
        self.return_scores = bool(return_scores)
        self._params = {"return_scores": self.return_scores}
        if max_new_tokens is not None:
            self._params["max_new_tokens"] = max_new_tokens
        if instruction is not None:
            self._params["instruction"] = instruction
        model = pipeline.model
        self.name = str(getattr(model, "name_or_path", type(model).__name__))
        self.identity = model_identity(self.name)

    @property
    def fingerprint(self) -> str:
        """The model's name and, for a local folder, its weight files' sizes and times (a checkpoint
        retrained into the same folder must not be served stale labels), dtype and settings."""
        folder = Path(self.name)
        stamps = []
        if folder.is_dir():
            stamps = [(p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(folder.glob("*.safetensors"))]
        return json.dumps([self.name, stamps, str(self.pipeline.model.dtype), self._params], sort_keys=True)

    def classify(self, images: list) -> list[dict]:
        images = list(images)
        if not images:
            return []
        records = self.pipeline(images, batch_size=min(self.batch_size, len(images)), **self._params)
        if isinstance(records, dict):
            records = [records]
        for record in records:
            record.setdefault("scores", None)
        return list(records)
