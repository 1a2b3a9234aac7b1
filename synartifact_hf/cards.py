"""Render the Hub cards in ``hub_cards/`` (dataset, model, metric, DDPO LoRA) with real values.

A template is Markdown with ``{{ name }}`` placeholders. :func:`render_card` fills every placeholder
from keyword values (``str()`` of each) and refuses to render when a placeholder has no value or a
value has no placeholder, so a card never ships with a hole or a silently dropped number.

>>> text = render_card_text("Accuracy: {{ acc }} on {{ n }} images.", acc="0.91", n=265)
>>> text
'Accuracy: 0.91 on 265 images.'
>>> render_card_text("{{ missing }}")
Traceback (most recent call last):
...
KeyError: 'Card template <string> needs values for: missing'
"""

from __future__ import annotations

import os
import re
from pathlib import Path

__all__ = ["CARDS_DIR", "template_path", "placeholders", "render_card", "render_card_text", "split_front_matter"]



def _default_cards_dir() -> Path:
    # A source checkout / editable install reads the repository's hub_cards/; a wheel ships the same
    # files as synartifact_hf/hub_cards/ (see setup.py). SYNARTIFACT_HUB_CARDS overrides both.
    if os.environ.get("SYNARTIFACT_HUB_CARDS"):
        return Path(os.environ["SYNARTIFACT_HUB_CARDS"])
    package = Path(__file__).resolve().parent
    checkout = package.parent / "hub_cards"
    return checkout if checkout.is_dir() else package / "hub_cards"


CARDS_DIR = _default_cards_dir()

_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


def template_path(template_name: str, cards_dir: str | Path | None = None) -> Path:
    """Path of a template in ``hub_cards/`` (``"dataset_card.md"`` or ``"dataset_card"``)."""
    directory = Path(cards_dir) if cards_dir is not None else CARDS_DIR
    name = template_name if template_name.endswith(".md") else f"{template_name}.md"
    if "/" in name or "\\" in name:
        raise ValueError(f"Template name {template_name!r} must be a file name inside {directory}")
    path = directory / name
    if not path.is_file():
        available = sorted(p.name for p in directory.glob("*.md")) if directory.is_dir() else []
        raise FileNotFoundError(
            f"Card template {path} not found (available: {', '.join(available) or 'none'}; "
            "set SYNARTIFACT_HUB_CARDS to the folder holding the templates)"
        )
    return path


def placeholders(text: str) -> list[str]:
    """Placeholder names in a template, in order of first use."""
    return list(dict.fromkeys(_PLACEHOLDER.findall(text)))


def render_card_text(template: str, *, _name: str = "<string>", **values) -> str:
    """Fill ``{{ name }}`` placeholders of ``template`` (a string) from ``values``."""
    needed = placeholders(template)
    missing = [name for name in needed if name not in values]
    if missing:
        raise KeyError(f"Card template {_name} needs values for: {', '.join(missing)}")
    unused = sorted(set(values) - set(needed))
    if unused:
        raise KeyError(f"Card template {_name} has no placeholder for: {', '.join(unused)}")
    return _PLACEHOLDER.sub(lambda m: str(values[m.group(1)]), template)


def render_card(template_name: str, *, cards_dir: str | Path | None = None, **values) -> str:
    """Render ``hub_cards/<template_name>`` with ``values``; returns the card text.

    Raises ``KeyError`` when a placeholder lacks a value or a value lacks a placeholder.
    """
    path = template_path(template_name, cards_dir)
    return render_card_text(path.read_text(encoding="utf-8"), _name=str(path), **values)


def split_front_matter(card: str) -> tuple[str, str]:
    """``(yaml, body)`` of a card that starts with a ``---`` YAML block; ``("", card)`` otherwise.

    >>> split_front_matter("---\\nlicense: mit\\n---\\n# Title\\n")
    ('license: mit', '# Title\\n')
    """
    if not card.startswith("---\n"):
        return "", card
    end = card.find("\n---\n", 4)
    if end < 0:
        raise ValueError("Card starts a YAML block with '---' but never closes it")
    return card[4:end], card[end + 5 :]
