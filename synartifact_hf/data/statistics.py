"""Statistics of a built SynArtifact-1K dataset, computed from its rows (never typed in).

They are counted on the ``default`` rows (labels, artifacts, generator, prompt source, size), so the
numbers in the card are the numbers ``load_dataset`` gives back.

>>> rows = {"train": [{"labels": ["No artifacts"], "artifacts": [], "generator": "DALLE 3",
...                    "prompt_source": "Users", "width": 1024, "height": 1024,
...                    "other_artifacts_caption": None, "t2i_misalignment_caption": None}]}
>>> stats = compute_statistics(rows)
>>> stats.images, stats.without_artifacts
({'train': 1}, {'train': 1})
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from ..taxonomy import NAMES, NO_ARTIFACTS
from .label_rules import LABEL_RULES, PAPER_WITH_ARTIFACTS, PAPER_WITHOUT_ARTIFACTS, check_label_rule

__all__ = ["DatasetStatistics", "compute_statistics", "BOX_BINS"]

BOX_BINS = ("0", "1", "2", "3", "4", "5+")


@dataclass
class DatasetStatistics:
    """Counts per split (``{split: ...}``); class counts are images carrying the label."""

    images: dict[str, int] = field(default_factory=dict)
    with_artifacts: dict[str, int] = field(default_factory=dict)
    without_artifacts: dict[str, int] = field(default_factory=dict)
    images_per_class: dict[str, Counter] = field(default_factory=dict)
    boxes_per_class: dict[str, Counter] = field(default_factory=dict)
    generators: dict[str, Counter] = field(default_factory=dict)
    prompt_sources: dict[str, Counter] = field(default_factory=dict)
    boxes_per_image: dict[str, Counter] = field(default_factory=dict)
    sizes: dict[str, Counter] = field(default_factory=dict)
    other_captions: dict[str, int] = field(default_factory=dict)
    t2i_captions: dict[str, int] = field(default_factory=dict)
    boxes: dict[str, int] = field(default_factory=dict)
    # Both label rules' counts, whichever rule ``labels`` follows: images with at least one box, and
    # images with no box but an other-artifacts caption (the difference between the two rules).
    with_boxes: dict[str, int] = field(default_factory=dict)
    other_caption_only: dict[str, int] = field(default_factory=dict)

    @property
    def splits(self) -> list[str]:
        return list(self.images)

    def total(self, attribute: str) -> int:
        return sum(getattr(self, attribute).values())

    def with_artifacts_under(self, rule: str) -> int:
        """Images with artifacts, all splits, under a label rule (``"boxes"`` or ``"boxes+caption"``)."""
        extra = self.total("other_caption_only") if check_label_rule(rule) == "boxes+caption" else 0
        return self.total("with_boxes") + extra

    def label_rule_table(self, rule: str) -> str:
        """Markdown: images with / without artifacts under both rules and in the paper; ``rule`` is
        marked as the one ``labels`` follows."""
        check_label_rule(rule)
        n = self.total("images")
        lines = [
            "| counted as \"with artifacts\" | with | without | share with |",
            "|---|---:|---:|---:|",
        ]
        meaning = {"boxes": "at least one box", "boxes+caption": "a box or an other-artifacts caption"}
        for name in sorted(LABEL_RULES, key=lambda r: r != "boxes"):
            with_art = self.with_artifacts_under(name)
            mark = " **(`labels` here)**" if name == rule else ""
            share = f"{100 * with_art / n:.1f} %" if n else "-"
            lines.append(f"| `{name}`: {meaning[name]}{mark} | {with_art} | {n - with_art} | {share} |")
        paper_n = PAPER_WITH_ARTIFACTS + PAPER_WITHOUT_ARTIFACTS
        lines.append(
            f"| the paper, all {paper_n:,} release images | {PAPER_WITH_ARTIFACTS} | {PAPER_WITHOUT_ARTIFACTS} "
            f"| {100 * PAPER_WITH_ARTIFACTS / paper_n:.1f} % |"
        )
        return "\n".join(lines)

    # ------------------------------------------------------------------------------------------
    # Markdown for the card

    def _table(self, header: str, per_split: Mapping[str, Counter], keys: Iterable[str] | None = None) -> str:
        splits = self.splits
        if keys is None:
            totals = Counter()
            for split in splits:
                totals.update(per_split[split])
            keys = [k for k, _ in sorted(totals.items(), key=lambda kv: (-kv[1], kv[0]))]
        lines = [f"| {header} | " + " | ".join(splits) + " | total |", "|---|" + "---:|" * (len(splits) + 1)]
        for key in keys:
            values = [per_split[split].get(key, 0) for split in splits]
            lines.append(f"| {key} | " + " | ".join(str(v) for v in values) + f" | {sum(values)} |")
        return "\n".join(lines)

    def to_markdown(self) -> str:
        splits = self.splits
        head = "| | " + " | ".join(splits) + " | total |"
        rule = "|---|" + "---:|" * (len(splits) + 1)

        def row(name: str, values: Mapping[str, int]) -> str:
            return f"| {name} | " + " | ".join(str(values[s]) for s in splits) + f" | {sum(values.values())} |"

        mean_boxes = {s: (self.boxes[s] / self.images[s] if self.images[s] else 0.0) for s in splits}
        overview = "\n".join(
            [
                head,
                rule,
                row("images", self.images),
                row("with artifacts (label rule)", self.with_artifacts),
                row("without artifacts (\"No artifacts\")", self.without_artifacts),
                row("with at least one box", self.with_boxes),
                row("with no box but an other-artifacts caption", self.other_caption_only),
                row("annotated boxes", self.boxes),
                "| boxes per image (mean) | "
                + " | ".join(f"{mean_boxes[s]:.2f}" for s in splits)
                + f" | {self.total('boxes') / max(1, self.total('images')):.2f} |",
                row("with an other-artifacts caption", self.other_captions),
                row("with a T2I-misalignment caption", self.t2i_captions),
            ]
        )
        return "\n\n".join(
            [
                "#### Overview\n\n" + overview,
                "#### Images per class\n\n"
                + self._table("class", self.images_per_class, NAMES)
                + "\n\nAn image counts once per class it carries, so the columns sum to more than the images.",
                "#### Boxes per class\n\n" + self._table("class", self.boxes_per_class, NAMES[:-1]),
                "#### Boxes per image\n\n" + self._table("boxes", self.boxes_per_image, BOX_BINS),
                "#### Images per generator\n\n" + self._table("generator (\"Model Type\")", self.generators),
                "#### Images per prompt source\n\n" + self._table("prompt source (\"Dataset\")", self.prompt_sources),
                "#### Image sizes\n\n" + self._table("width x height", self.sizes),
            ]
        )


def _name(label) -> str:
    return NAMES[label] if isinstance(label, int) else label


def compute_statistics(rows_by_split: Mapping[str, Iterable[Mapping]]) -> DatasetStatistics:
    """Count ``default``-config rows per split (``labels`` / box ``label`` as ids or names)."""
    stats = DatasetStatistics()
    for split, rows in rows_by_split.items():
        images = with_art = other = t2i = boxes = with_boxes = caption_only = 0
        per_class, box_class, gens, sources, per_image, sizes = (Counter() for _ in range(6))
        for row in rows:
            images += 1
            labels = [_name(label) for label in row["labels"]]
            if labels != [NO_ARTIFACTS]:
                with_art += 1
            per_class.update(set(labels))
            artifacts = row["artifacts"]
            boxes += len(artifacts)
            with_boxes += bool(artifacts)
            caption_only += not artifacts and row["other_artifacts_caption"] is not None
            box_class.update(_name(a["label"]) for a in artifacts)
            per_image[str(len(artifacts)) if len(artifacts) < 5 else "5+"] += 1
            gens[row["generator"]] += 1
            sources[row["prompt_source"]] += 1
            sizes[f"{row['width']}x{row['height']}"] += 1
            other += row["other_artifacts_caption"] is not None
            t2i += row["t2i_misalignment_caption"] is not None
        stats.images[split] = images
        stats.with_artifacts[split] = with_art
        stats.without_artifacts[split] = images - with_art
        stats.images_per_class[split] = per_class
        stats.boxes_per_class[split] = box_class
        stats.generators[split] = gens
        stats.prompt_sources[split] = sources
        stats.boxes_per_image[split] = per_image
        stats.sizes[split] = sizes
        stats.other_captions[split] = other
        stats.t2i_captions[split] = t2i
        stats.boxes[split] = boxes
        stats.with_boxes[split] = with_boxes
        stats.other_caption_only[split] = caption_only
    return stats
