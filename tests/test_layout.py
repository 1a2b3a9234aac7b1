"""The package's layout rules: no private names taken across modules, one naming convention for
command-line modules."""

from __future__ import annotations

import ast
from pathlib import Path

from synartifact_hf.cli import COMMANDS

ROOT = Path(__file__).resolve().parents[1]


def _private_imports(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith("synartifact_hf")):
            found += [f"{node.module}.{a.name}" for a in node.names
                      if a.name.startswith("_") and not a.name.endswith("__")]  # dunders are public
    return found


def test_no_module_of_the_package_takes_another_modules_private_names():
    offenders = {str(p.relative_to(ROOT)): names for p in sorted((ROOT / "synartifact_hf").rglob("*.py"))
                 if (names := _private_imports(p))}
    assert not offenders, f"private names imported across modules: {offenders}"


def test_command_modules_are_named_cli_command():
    for name, (module, _) in COMMANDS.items():
        assert module.rsplit(".", 1)[1].startswith("cli_"), f"{name}: {module} is not a cli_<command> module"
