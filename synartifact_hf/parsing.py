"""Free-form VLM answer -> taxonomy labels, other-artifacts caption, boxes and parse issues.

The parser reads what the classification instruction asks for ("1. Duplicated components.") and
also what models actually write: other numbering styles ("1)", "-", "*", none), any case, missing or
extra punctuation, several options on one line separated by commas or semicolons, near names and
common variants ("Distortion", "blurry", "illegible text") and small typos. List numbers are item
counters, never option numbers. Detection answers (four sub-tasks, see
:func:`synartifact_hf.instructions.detection_instruction`) are recognised by their headers.

Nothing is guessed silently: an empty or unreadable answer gives no labels (never "No artifacts")
and an issue; "No artifacts" next to artifact labels is a conflict (the artifacts win, flagged).

>>> r = parse_answer("1. Duplicated components.\\n2. Other artifacts: The gown is out of frame.")
>>> r.labels, r.other_caption, r.issues
(['Duplicated components', 'Other artifacts'], 'The gown is out of frame.', [])
>>> parse_answer("distortion; blurry").labels
['Distorted and deformed components', 'Localized blur']
>>> r = parse_answer("No artifacts. 2. Omitted components")
>>> r.labels, r.conflict
(['Omitted components'], True)
>>> parse_answer("").issues
['empty answer']
"""

from __future__ import annotations

import difflib
import re
from dataclasses import asdict, dataclass, field

from .taxonomy import CLASSES, NO_ARTIFACTS, NO_ARTIFACTS_ID, OTHER_ARTIFACTS_ID, find_class, normalize_name

__all__ = ["ParsedAnswer", "parse_answer"]


@dataclass
class ParsedAnswer:
    """What :func:`parse_answer` read from one answer.

    Attributes:
        labels: canonical taxonomy names, in taxonomy order; ``[]`` when nothing could be mapped.
        other_caption: the text after "Other artifacts:" (or the detection caption line), else None.
        boxes: detection boxes as written, ``{"label": name, "bbox": [x1, y1, x2, y2]}``.
        judgement: the detection answer's "Artifact judgement" (True = Yes, False = No), else None.
        unmapped: fragments that mapped to no option.
        conflict: "No artifacts" was given together with artifacts (the artifacts were kept).
        issues: human-readable problems; empty when the answer was clean.
    """

    labels: list[str] = field(default_factory=list)
    other_caption: str | None = None
    boxes: list[dict] = field(default_factory=list)
    judgement: bool | None = None
    unmapped: list[str] = field(default_factory=list)
    conflict: bool = False
    issues: list[str] = field(default_factory=list)

    @property
    def has_artifacts(self) -> bool | None:
        """True with any artifact label, False for exactly "No artifacts", None when nothing parsed."""
        if not self.labels:
            return None
        return self.labels != [NO_ARTIFACTS]

    def to_dict(self) -> dict:
        out = asdict(self)
        out["has_artifacts"] = self.has_artifacts
        return out


# Item counters and bullets at the start of an item: "1.", "1)", "(1)", "1:", "-", "*", "•".
_LEADER = re.compile(r"^\s*(?:\(?\d{1,3}\s*[.):]|[-*•+>]+|#+)\s*")
# A counter inside a line ("... frame. 2. Omitted"), where several items were run together.
_INLINE_COUNTER = re.compile(r"(?:(?<=\s)|(?<=^))\(?\d{1,2}[.)]\s+(?=[^\d\s])")
_OTHER_WITH_CAPTION = re.compile(r"^\W*other\s+art[ie]facts?\s*[:\-–—]\s*(?P<caption>.*\S)\s*$", re.I | re.S)
_SEPARATORS = re.compile(r"\s*[;,]\s*|\s+/\s+")
_EDGE_JUNK = re.compile(r"^[\s\"'`*_.:;,!?()\[\]]+|[\s\"'`*_.:;,!?()\[\]]+$")

_HEADER = re.compile(
    r"^\W*(?P<key>artifacts?\s+judge?ment|artifacts?\s+classification|artifacts?\s+location|"
    r"other\s+art[ie]facts?\s+caption)\s*:?\s*(?P<rest>.*)$",
    re.I,
)
_BOX = re.compile(
    r"^(?P<label>.*?)\s*[:\-–]?\s*\[\s*(?P<nums>-?\d+(?:\.\d+)?(?:\s*,\s*-?\d+(?:\.\d+)?){3})\s*\]\s*\.?\s*$"
)
_NONE_WORDS = {"none", "n a", "na", "nothing", "no", ""}
_NEGATORS = {"no", "not", "without", "nor", "never", "neither", "free"}


def _is_none(text: str) -> bool:
    """True for "None", "N/A", "-" and the like; Unicode-aware so a caption such as "µ" is kept."""
    return re.sub(r"[\W_]+", " ", text.lower()).strip() in _NONE_WORDS

# Keys for substring and fuzzy matching: canonical names and multi-word aliases. Single-word aliases
# ("no", "other", "blur") only match a whole fragment, since inside a sentence they mean little.
_PHRASES: list[tuple[str, int]] = sorted(
    {
        (normalize_name(key), cls.id)
        for cls in CLASSES
        for key in (cls.name, *cls.aliases)
        if " " in normalize_name(key)
    },
    key=lambda kv: -len(kv[0]),
)
_FUZZY_KEYS: dict[str, int] = {
    normalize_name(key): cls.id for cls in CLASSES for key in (cls.name, *cls.aliases) if len(key) >= 5
}


def _clean(fragment: str) -> str:
    return _EDGE_JUNK.sub("", _LEADER.sub("", fragment)).strip()


def _match_fragment(fragment: str) -> list[int]:
    """Map one fragment to class ids: an exact name/alias, else every known phrase inside it (longest
    first, without overlaps), else one near spelling of the whole fragment."""
    text = _clean(fragment)
    if not text:
        return []
    hit = find_class(text)
    if hit is not None:
        return [hit.id]
    padded = f" {normalize_name(text)} "
    ids, negated = [], False
    for phrase, cls_id in _PHRASES:
        needle = f" {phrase} "
        while (at := padded.find(needle)) >= 0:
            # "there are no duplicated components" names a class only to deny it.
            if cls_id == NO_ARTIFACTS_ID or not _NEGATORS & set(padded[:at].split()[-3:]):
                ids.append(cls_id)
            else:
                negated = True
            # Blank the match out so a shorter phrase inside it ("spatial relationship" inside
            # "non spatial relationship") is not counted again.
            padded = padded[:at] + " | " + padded[at + len(needle):]
    if ids or negated:
        return ids
    close = difflib.get_close_matches(normalize_name(text), list(_FUZZY_KEYS), n=1, cutoff=0.85)
    return [_FUZZY_KEYS[close[0]]] if close else []


def _split_items(line: str) -> list[str]:
    """One line -> its items, splitting run-together counters ("1. A. 2. B.")."""
    starts = [m.start() for m in _INLINE_COUNTER.finditer(line)]
    if not starts or starts[0] != 0:
        starts = [0, *starts]
    bounds = [*starts, len(line)]
    return [line[a:b] for a, b in zip(bounds, bounds[1:]) if line[a:b].strip()]


class _Collector:
    def __init__(self) -> None:
        self.ids: set[int] = set()
        self.caption: str | None = None
        self.unmapped: list[str] = []

    def add_item(self, item: str) -> None:
        body = _LEADER.sub("", item).strip()
        other = _OTHER_WITH_CAPTION.match(body)
        if other:
            caption = other.group("caption").strip()
            # "Other artifacts: None" denies other artifacts, as the release's "None" caption does.
            if not _is_none(caption):
                self.ids.add(OTHER_ARTIFACTS_ID)
                self.caption = caption if self.caption is None else f"{self.caption} {caption}"
            return
        exact = find_class(_clean(body))
        if exact is not None:
            self.ids.add(exact.id)
            return
        for piece in _SEPARATORS.split(body):
            if not _clean(piece):
                continue
            ids = _match_fragment(piece)
            if ids:
                self.ids.update(ids)
            else:
                self.unmapped.append(_clean(piece))


def parse_answer(text: str) -> ParsedAnswer:
    """Parse a classification or detection answer. Never raises for a ``str``; see :class:`ParsedAnswer`."""
    result = ParsedAnswer()
    if not isinstance(text, str):
        result.issues.append(f"answer is not a string ({type(text).__name__})")
        return result
    if not text.strip():
        result.issues.append("empty answer")
        return result

    found = _Collector()
    section = "classification"
    for raw_line in text.splitlines():
        line = raw_line.strip()
        if not line:
            continue
        header = _HEADER.match(line)
        if header:
            key = normalize_name(header.group("key"))
            rest = header.group("rest").strip()
            if "judg" in key:
                section = "judgement"
                word = normalize_name(rest).split(" ")[0] if rest else ""
                if word in ("yes", "no"):
                    result.judgement = word == "yes"
                elif rest:
                    found.unmapped.append(_clean(rest))
                continue
            if "caption" in key:
                section = "caption"
                if not _is_none(rest):
                    found.caption = rest
                    found.ids.add(OTHER_ARTIFACTS_ID)
                continue
            section = "location" if "location" in key else "classification"
            line = rest
            if not line:
                continue
        if section == "caption":
            found.caption = line if found.caption is None else f"{found.caption} {line}"
            found.ids.add(OTHER_ARTIFACTS_ID)
            continue
        if section == "location":
            _read_box_line(line, result, found)
            continue
        for item in _split_items(line):
            found.add_item(item)

    if result.judgement is False and not (found.ids - {NO_ARTIFACTS_ID}):
        found.ids.add(NO_ARTIFACTS_ID)
    if NO_ARTIFACTS_ID in found.ids and len(found.ids) > 1:
        found.ids.discard(NO_ARTIFACTS_ID)
        result.conflict = True
        result.issues.append("conflict: 'No artifacts' given together with artifacts (artifacts kept)")
    if result.judgement is not None and found.ids:
        if result.judgement != (NO_ARTIFACTS_ID not in found.ids):
            result.conflict = True
            result.issues.append("conflict: the artifact judgement disagrees with the listed options")

    result.labels = [CLASSES[i].name for i in sorted(found.ids)]
    result.other_caption = found.caption
    result.unmapped = [u for u in found.unmapped if u]
    if not result.labels:
        result.issues.append("no option recognised")
    if result.unmapped:
        result.issues.append(f"unmapped: {result.unmapped}")
    return result


def _read_box_line(line: str, result: ParsedAnswer, found: _Collector) -> None:
    body = _LEADER.sub("", line).strip()
    if _is_none(body):
        return
    match = _BOX.match(body)
    if not match:
        found.unmapped.append(_clean(body))
        return
    ids = _match_fragment(match.group("label"))
    cls_id = ids[0] if len(ids) == 1 else None
    if cls_id is None or cls_id == NO_ARTIFACTS_ID:
        found.unmapped.append(_clean(body))
        return
    found.ids.add(cls_id)
    bbox = [float(v) for v in match.group("nums").split(",")]
    result.boxes.append({"label": CLASSES[cls_id].name, "bbox": bbox})
