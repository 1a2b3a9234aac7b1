"""The SynArtifact web app (Gradio): classifier, reward and detector in the browser, and its Space export.

``build_app(model, detection_model=None, ...)`` returns the ``gradio.Blocks`` app (:mod:`.ui`);
``export_space(out_dir, model, ...)`` writes a Hub-ready Space folder (:mod:`.space`). The per-image
work lives in :mod:`.analysis`, which does not need gradio. Gradio is the optional extra
``synartifact-hf[app]``; it is imported only when an app is built, never by ``import synartifact_hf``.
"""

from __future__ import annotations

__all__ = ["build_app", "export_space"]


def __getattr__(name: str):
    if name == "build_app":
        from .ui import build_app

        return build_app
    if name == "export_space":
        from .space import export_space

        return export_space
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
