"""Render each metric folder's ``README.md`` (its Hub card) from ``hub_cards/metric_card.md``, and its
Spaces ``app.py`` (:mod:`.space_app`).

The card reuses the module's own ``_DESCRIPTION``, ``_KWARGS_DESCRIPTION`` and ``_CITATION`` (read with
``ast``, so rendering imports neither evaluate nor datasets); only what a module does not say (how to call
it briefly, numbers from the paper, limitations) lives here. The test suite checks that every committed
README equals its rendering, so card and module cannot drift. Regenerate after editing either::

    python -m synartifact_hf.metrics.card

>>> card = render_metric_card("artifact_f1")
>>> card.splitlines()[1]
'title: artifact_f1'
>>> "- **predictions** (`list` of `list` of `str` or `int`): predicted labels" in card
True
"""

from __future__ import annotations

import ast
import os
import re
import sys
import textwrap

from ..atomic import write_text_atomic
from ..cards import render_card
from . import METRICS, path
from .space_app import SDK_VERSION, render_space_app

__all__ = ["module_strings", "render_metric_card", "write_metric_card", "write_space_app"]

_EXTRAS = {
    "artifact_f1": {
        "how_to_use": """\
results = artifact_f1.compute(
    predictions=[["Duplicated components"], ["No artifacts"]],
    references=[["Duplicated components", "Omitted components"], [13]],  # names or ids 0-13
)
results["f1"], results["per_class"]["Omitted components"]["recall"]  # (0.8333..., 0.0)

# raw model answers, parsed with synartifact_hf.parsing.parse_answer
artifact_f1 = evaluate.load(synartifact_hf.metrics.path("artifact_f1"), "text")
artifact_f1.compute(
    predictions=["1. Duplicated components.\\n2. Omitted components."], references=[["Duplicated components"]]
)""",
        "paper_values": """\
Table 2 of the paper (SynArtifact-1K test split, 265 images; accuracy / precision / recall / F1 in %, the
"All" rows), which this metric's example-based scores are meant to reproduce:

| model | accuracy | precision | recall | F1 |
|---|---|---|---|---|
| LLaVA-1.5, instruction-tuned on LLaVA-v1.5-mix665K (baseline) | 20.00 | 25.28 | 22.14 | 23.01 |
| SynArtifact-1K, Stage-1 init, LLM frozen (best) | 45.66 | 54.40 | 51.84 | 52.02 |
| SynArtifact-1K, Stage-1 init, LLM updated | 36.23 | 48.87 | 47.30 | 46.50 |
| SynArtifact-1K, Stage-2 init, LLM frozen | 34.34 | 39.87 | 42.30 | 40.10 |

The paper does not define its formulas; the per-example definitions here are the ones consistent with its
best row (F1 below the harmonic mean of P and R). Its per-class rows ("Distortion", "No artifacts")
correspond to `per_class[...]` here, but their accuracy is not defined in the paper.""",
        "limitations": """\
- SynArtifact-1K labels come from a single annotation per image and are noisy; with 265 test images one
  example moves an example-based score by up to 0.38 points.
- "No artifacts" is scored as an ordinary 14th class: predicting it for an image with artifacts is one
  false positive plus the missed classes. A prediction that contains "No artifacts" together with artifact
  labels is scored as given (the answer parser already drops "No artifacts" in that case).
- Example-based scores weight every image equally, whatever its number of labels; micro scores weight
  every label decision equally; macro scores weight every class equally (rare classes are noisy).
- Per-class accuracy is dominated by true negatives for rare classes; look at per-class F1 and jaccard.
- With the "text" config the numbers include the parser's reading of the answers; answers it cannot map
  count as empty predictions (see `empty_prediction_rate`).""",
    },
    "artifact_iou": {
        "how_to_use": """\
results = artifact_iou.compute(
    predictions=[{"boxes": [[0.1, 0.1, 0.5, 0.5]], "labels": ["Localized blur"]}],
    references=[{"boxes": [[0.1, 0.1, 0.5, 0.4]], "labels": ["Localized blur"]}],
)
results["mean_iou"], results["recall"]  # (0.75..., 1.0)

# raw detection answers ("Artifact location:" lines), parsed with synartifact_hf.parsing.parse_answer
artifact_iou = evaluate.load(synartifact_hf.metrics.path("artifact_iou"), "text")""",
        "paper_values": """\
The paper (Appendix A.3) evaluates artifact localization by the IoU between predicted boxes and
ground-truth boxes of the same class, with boxes normalized to the 336x336 padded square, but states
neither a matching rule nor a threshold; this module fixes both (above) and reports the matched-pair and
over-ground-truth means separately so either reading can be compared.""",
        "limitations": """\
- Greedy matching can pair boxes differently from an optimal (Hungarian) assignment when boxes of one class
  overlap crosswise; with the few boxes per image of SynArtifact-1K this is rare.
- Answers have no confidence scores, so there is no precision-recall curve or average precision; precision
  and recall are at one IoU threshold.
- A box with the right place but the wrong class scores nothing; classification quality is measured by
  `artifact_f1`.
- Boxes as written by a model are used as they are: coordinates outside [0, 1] are not clipped, and a box
  with no area matches nothing.""",
    },
}

_SECTION = re.compile(r"^(Args|Returns|Raises|Examples):\s*$", re.M)
_ENTRY = re.compile(r"^([^(:]+?)(\s*[(:].*)$", re.S)


def module_strings(name: str) -> dict[str, str]:
    """``_DESCRIPTION``, ``_KWARGS_DESCRIPTION`` and ``_CITATION`` of metric ``name``, without importing it."""
    file = os.path.join(path(name), f"{name}.py")
    with open(file, encoding="utf-8") as handle:
        tree = ast.parse(handle.read(), filename=file)
    strings = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            if node.targets[0].id in ("_DESCRIPTION", "_KWARGS_DESCRIPTION", "_CITATION"):
                strings[node.targets[0].id] = ast.literal_eval(node.value)
    missing = {"_DESCRIPTION", "_KWARGS_DESCRIPTION", "_CITATION"} - set(strings)
    if missing:
        raise ValueError(f"{file} does not define {', '.join(sorted(missing))}")
    return strings


def _sections(kwargs_description: str) -> dict[str, str]:
    parts = _SECTION.split(kwargs_description)
    return {parts[i]: textwrap.dedent(parts[i + 1]).strip("\n") for i in range(1, len(parts), 2)}


def _bullets(block: str) -> str:
    """``name (`type`): text`` entries (continuation lines indented) -> Markdown bullets."""
    items: list[str] = []
    for line in block.splitlines():
        if not line.strip():
            continue
        if line.startswith(" "):
            items[-1] += " " + line.strip()
        else:
            items.append(line.strip())
    out = []
    for item in items:
        # "name (`type`): text", "a, b, c (`type`): text" or "ValueError: text": bold the names.
        names, rest = _ENTRY.match(item).groups()
        out.append(f"- **{names}**{rest}")
    return "\n".join(out)


def _examples(block: str) -> str:
    """Titles stay text; each indented doctest run becomes a fenced Python block."""
    out, code = [], []
    for line in block.splitlines() + [""]:
        if line.startswith("    "):
            code.append(line[4:])
            continue
        if code:
            out += ["```python", *code, "```", ""]
            code = []
        if line.strip():
            out += [line.strip(), ""]
    return "\n".join(out).strip()


def render_metric_card(name: str) -> str:
    """The README.md text of metric ``name``."""
    strings = module_strings(name)
    description = strings["_DESCRIPTION"].strip()
    sections = _sections(strings["_KWARGS_DESCRIPTION"])
    first_paragraph = " ".join(description.split("\n\n")[0].split())
    return render_card(
        "metric_card",
        name=name,
        title=name,
        sdk_version=SDK_VERSION,
        module_file=f"{name}.py",
        yaml_description="\n".join(
            textwrap.wrap(first_paragraph, 100, initial_indent="  ", subsequent_indent="  ")
        ),
        description=description,
        inputs=_bullets(sections["Args"]),
        outputs=_bullets(sections["Returns"]),
        errors=_bullets(sections["Raises"]),
        examples=_examples(sections["Examples"]),
        citation=strings["_CITATION"].strip(),
        **_EXTRAS[name],
    )


def write_metric_card(name: str) -> str:
    """Write ``README.md`` into the metric folder (temp file + rename); returns its path."""
    return _write(name, "README.md", render_metric_card(name))


def write_space_app(name: str) -> str:
    """Write the Spaces ``app.py`` into the metric folder (temp file + rename); returns its path."""
    return _write(name, "app.py", render_space_app(name))


def _write(name: str, file_name: str, text: str) -> str:
    target = os.path.join(path(name), file_name)
    write_text_atomic(target, text)
    return target


def main(argv=None) -> int:
    for name in argv or METRICS:
        print(write_metric_card(name))
        print(write_space_app(name))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
