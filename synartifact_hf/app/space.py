"""Export the web app as a Hub-ready Gradio Space folder: ``app.py``, ``requirements.txt`` and a
``README.md`` whose YAML header is the Spaces configuration.

The Space runs the same :func:`synartifact_hf.app.build_app` as ``synartifact-hf app``; it pins the
gradio version it was exported with (``sdk_version``), so the Space runs what was tested. Upload the
folder with ``hf upload --repo-type space YOUR-NAME/SPACE-NAME DIR .``.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..atomic import write_text_atomic

__all__ = ["export_space", "space_files"]

APP_PY = '''\
"""SynArtifact web app for {model} (exported by `synartifact-hf app --export-space`)."""

import os

from synartifact_hf.app import build_app
from synartifact_hf.app.ui import launch_app

demo = build_app({model!r}, {detection!r}, reward_mode={reward_mode!r}, max_new_tokens={max_new_tokens!r},
                 detection_max_new_tokens={detection_max_new_tokens!r}, model_label={model_label!r})

if __name__ == "__main__":
    # Spaces set GRADIO_SERVER_NAME=0.0.0.0 and the port; elsewhere this binds 127.0.0.1.
    launch_app(demo, host=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
               port=int(os.environ.get("GRADIO_SERVER_PORT", "7860")))
'''

README = """\
---
title: {title}
emoji: 🎨
colorFrom: indigo
colorTo: yellow
sdk: gradio
sdk_version: {gradio_version}
python_version: "{python_version}"
app_file: app.py
pinned: false
license: apache-2.0
models:
{models}
tags:
- synartifact
- artifact-classification
- arxiv:2402.18068
short_description: Which artifacts does a VLM see in a synthetic image?
---

# {title}

The SynArtifact web app for [`{model}`](https://huggingface.co/{model}){detection_note}: upload, drop or
paste images (or click a bundled sample) and see the model's verdict, labels, other-artifacts caption,
raw answer, the scores of the 14 options (relative likelihoods, not calibrated probabilities), the
DDPO reward of the answer (paper Eq. 4) with its terms, and the detected boxes.

Built with [synartifact-hf](https://pypi.org/project/synartifact-hf/) {version}; gradio {gradio_version}
(the version the app was tested with). Requests queue in a bounded queue (one model call at a time).
Run it locally with `pip install -r requirements.txt && python app.py`.
"""


def space_files(model: str, detection_model: str | None = None, *, title: str = "SynArtifact",
                reward_mode: str = "bertscore", max_new_tokens: int = 128,
                detection_max_new_tokens: int = 256, model_label: str | None = None) -> dict[str, str]:
    """``{file name: text}`` of the Space folder for Hub model ``model`` (a Hub id or a folder name)."""
    import platform
    from importlib.metadata import version

    import gradio

    __version__ = version("synartifact-hf")

    if not model or not isinstance(model, str):
        raise ValueError(f"model must be a Hub model id such as your-name/your-classifier, got {model!r}")
    app = APP_PY.format(model=model, detection=detection_model, reward_mode=reward_mode,
                        max_new_tokens=max_new_tokens, detection_max_new_tokens=detection_max_new_tokens,
                        model_label=model_label)
    models = [model] + ([detection_model] if detection_model and detection_model != model else [])
    readme = README.format(
        title=title, gradio_version=gradio.__version__, python_version=".".join(platform.python_version_tuple()[:2]),
        models="\n".join(f"- {m}" for m in models), model=model, version=__version__,
        detection_note=f" (detection: [`{detection_model}`](https://huggingface.co/{detection_model}))"
        if detection_model and detection_model != model else "",
    )
    requirements = (f"synartifact-hf[app]=={__version__}\n"
                    f"gradio=={gradio.__version__}\n"
                    "torch\n")
    return {"app.py": app, "requirements.txt": requirements, "README.md": readme}


def export_space(out_dir: str | os.PathLike, model: str, detection_model: str | None = None, *,
                 overwrite: bool = False, **kwargs) -> Path:
    """Write the Space folder (see :func:`space_files`) into ``out_dir``; each file is written to a
    temporary name and renamed. Refuses a non-empty folder unless ``overwrite``."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise FileExistsError(f"{out} is not empty; pass overwrite=True (--overwrite) to replace its Space files")
    files = space_files(model, detection_model, **kwargs)
    out.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        write_text_atomic(out / name, text)
    return out
