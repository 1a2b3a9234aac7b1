"""The paper's citation lives in one place (synartifact_hf.paper) and training does not reach into data/."""

from __future__ import annotations

import ast
from pathlib import Path

import synartifact_hf.metrics
from synartifact_hf.paper import ARXIV_ID, CITATION, TITLE

ROOT = Path(__file__).resolve().parents[1]


def _imported_modules(path: Path) -> set[str]:
    """Absolute module names imported by ``path`` (relative imports resolved against its package)."""
    package = path.relative_to(ROOT).with_suffix("").parts[:-1]
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = list(package[: len(package) - node.level + 1]) if node.level else []
            names.add(".".join(base + ([node.module] if node.module else [])))
    return names


def test_training_does_not_import_the_dataset_code():
    for path in sorted((ROOT / "synartifact_hf" / "training").glob("*.py")):
        data_imports = {m for m in _imported_modules(path) if m.startswith("synartifact_hf.data")}
        assert not data_imports, f"{path.name} imports {sorted(data_imports)}"


def test_every_card_template_cites_the_paper_through_one_entry():
    for template in sorted((ROOT / "hub_cards").glob("*.md")):
        text = template.read_text()
        assert "{{ citation }}" in text, template.name
        assert "cao2024synartifact" not in text, f"{template.name} hard-codes the citation"
    assert TITLE in CITATION and ARXIV_ID in CITATION
    # The metric modules must stay importable without synartifact_hf, so they carry their own copy.
    for name in synartifact_hf.metrics.METRICS:
        module = Path(synartifact_hf.metrics.path(name), f"{name}.py").read_text()
        assert TITLE.casefold() in module.casefold() and ARXIV_ID in module
