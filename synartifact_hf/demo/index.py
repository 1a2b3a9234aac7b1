"""The demo's index: ``demo-output/README.md`` lists every table and figure the run wrote, with links.

The demo names what it wrote (:class:`Entry`, with a line saying what each file shows); anything else the
run left under the output folder that is a table or a figure (``*.md`` reports, ``*.png``) is listed too,
so the index never misses a file. Step durations go at the end.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..atomic import write_text_atomic

__all__ = ["Entry", "write_index"]

# Folders whose markdown is not a result table: the dataset and model cards, the models' own files.
_CARD_NAMES = {"README.md"}


@dataclass(frozen=True)
class Entry:
    """A file the demo wrote: ``kind`` is "table" or "figure"; ``path`` relative to the output folder."""

    kind: str
    path: str
    description: str


def _found(out: Path) -> list[str]:
    found = []
    for path in sorted(out.rglob("*")):
        rel = path.relative_to(out)
        if any(part.startswith(".") for part in rel.parts) or not path.is_file():
            continue
        if path.suffix == ".png" or (path.suffix == ".md" and path.name not in _CARD_NAMES):
            found.append(rel.as_posix())
    return found


def write_index(output_dir, entries: list[Entry], *, title: str, intro: str, durations=(), folders=()) -> Path:
    """Write ``README.md`` in ``output_dir``; raises ``FileNotFoundError`` for an entry that is not there."""
    out = Path(output_dir)
    missing = [e.path for e in entries if not (out / e.path).is_file()]
    if missing:
        raise FileNotFoundError(f"the demo index names files that were not written in {out}: {missing}")
    listed = {e.path for e in entries}
    extra = [Entry("figure" if p.endswith(".png") else "table", p, "") for p in _found(out) if p not in listed]
    lines = [f"# {title}", "", intro, ""]
    for kind, heading in (("table", "Tables"), ("figure", "Figures")):
        rows = [e for e in [*entries, *extra] if e.kind == kind]
        if rows:
            lines += [f"## {heading}", ""]
            lines += [f"- [`{e.path}`]({e.path})" + (f": {e.description}" if e.description else "") for e in rows]
            lines.append("")
    if folders:
        lines += ["## Folders", ""]
        lines += [f"- [`{path}/`]({path}/): {description}" for path, description in folders]
        lines.append("")
    if durations:
        lines += ["## Time per step", "", "| Step | Seconds |", "|---|---:|"]
        lines += [f"| {name} | {seconds:.1f} |" for name, seconds in durations]
        lines.append(f"| **total** | {sum(s for _, s in durations):.1f} |")
        lines.append("")
    return write_text_atomic(out / "README.md", "\n".join(lines))
