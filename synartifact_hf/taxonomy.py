"""The SynArtifact taxonomy: 13 artifact classes plus "No artifacts", as data.

Ids are 0-based and equal the ``artifacts_class`` index stored in the raw SynArtifact-1K release;
"No artifacts" (option 14 of the instruction) is id 13. Names and explanations are the exact words of
the paper's classification instruction (its Figure 11).

>>> from synartifact_hf.taxonomy import get_class
>>> get_class(2).name
'Distorted and deformed components'
>>> get_class("distortion").id
2
>>> get_class("No artifacts").option_number
14
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

__all__ = [
    "ArtifactClass",
    "CLASSES",
    "ARTIFACT_CLASSES",
    "NAMES",
    "ARTIFACT_NAMES",
    "NO_ARTIFACTS",
    "NO_ARTIFACTS_ID",
    "OTHER_ARTIFACTS",
    "OTHER_ARTIFACTS_ID",
    "NUM_CLASSES",
    "GROUPS",
    "get_class",
    "find_class",
    "normalize_name",
    "sort_labels",
]


@dataclass(frozen=True)
class ArtifactClass:
    """One option of the SynArtifact instruction.

    Attributes:
        id: 0-based index; equals the raw release's ``artifacts_class`` (13 = "No artifacts").
        name: the option name exactly as written in the instruction.
        explanation: what the option means, exactly as written after "mean(s)" in the instruction.
        verb: "mean" or "means", as the instruction conjugates it after the name.
        group: coarse group from the paper (``GROUPS``).
        phrase: short text used as the reward's reference phrase s_k (paper Eq. 4).
        aliases: other spellings users and models write for this class (lower case, normalized).
    """

    id: int
    name: str
    explanation: str
    verb: str
    group: str
    phrase: str
    aliases: tuple[str, ...] = field(default=())

    @property
    def option_number(self) -> int:
        """1-based number of this option in the instruction."""
        return self.id + 1

    @property
    def is_artifact(self) -> bool:
        return self.id != NO_ARTIFACTS_ID

    @property
    def option_text(self) -> str:
        """The option line of the instruction, e.g. ``"1. Illegible letters mean ..."``."""
        return f"{self.option_number}. {self.name} {self.verb} {self.explanation}"


GROUPS: dict[str, str] = {
    "object-aware": "Object-aware artifacts",
    "object-agnostic/abnormal-components": "Object-agnostic artifacts: abnormal components",
    "object-agnostic/attribute-mis-binding": "Object-agnostic artifacts: attribute mis-binding",
    "lighting": "Lighting artifacts",
    "others": "Other artifacts",
    "none": "No artifacts",
}

CLASSES: tuple[ArtifactClass, ...] = (
    ArtifactClass(
        0,
        "Illegible letters",
        "there are some distorted letters or text elements.",
        "mean",
        "object-aware",
        "Illegible letters",
        ("illegible letter", "illegible text", "illegible texts", "illegible characters", "illegible words",
         "distorted letters", "distorted text", "unreadable text", "garbled text", "letters"),
    ),
    ArtifactClass(
        1,
        "Awkward facial expression",
        "person or animal has an abnormal facial expression.",
        "means",
        "object-aware",
        "Awkward facial expression",
        ("awkward facial expressions", "awkward expression", "awkward face", "abnormal facial expression",
         "facial expression", "distorted face", "deformed face"),
    ),
    ArtifactClass(
        2,
        "Distorted and deformed components",
        "objects having details or shape that are not typical (e.g. distorted limbs).",
        "mean",
        "object-agnostic/abnormal-components",
        "Distorted and deformed components",
        ("distortion", "distortions", "deformation", "deformations", "distorted components",
         "deformed components", "distorted component", "deformed component", "distorted or deformed components",
         "distorted", "deformed", "distorted and deformed component", "distorted limbs"),
    ),
    ArtifactClass(
        3,
        "Duplicated components",
        "repeated elements that should be unique in the scene (e.g. two identical clouds side by side).",
        "mean",
        "object-agnostic/abnormal-components",
        "Duplicated components",
        ("duplicate", "duplicates", "duplicated", "duplication", "duplicate components", "duplicated component",
         "repeated components", "extra components", "extra limbs"),
    ),
    ArtifactClass(
        4,
        "Omitted components",
        "object misses components or is incomplete.",
        "mean",
        "object-agnostic/abnormal-components",
        "Omitted components",
        ("omission", "omissions", "omitted", "omitted component", "missing components", "missing component",
         "missing parts", "incomplete components", "incomplete objects"),
    ),
    ArtifactClass(
        5,
        "Chromatic irregularity",
        "objects having colors that they don't usually possess (e.g. a blue apple).",
        "means",
        "object-agnostic/attribute-mis-binding",
        "Chromatic irregularity",
        ("chromatic irregularities", "chromatic irregulation", "color irregularity", "colour irregularity",
         "abnormal color", "abnormal colour", "wrong color", "wrong colour", "chromatic"),
    ),
    ArtifactClass(
        6,
        "Abnormal non-spatial relationship",
        "abnormal interaction between two objects (e.g. two objects are fused).",
        "means",
        "object-agnostic/attribute-mis-binding",
        "Abnormal non-spatial relationship",
        ("abnormal non spatial relationship", "non-spatial relationship", "non spatial relationship",
         "abnormal nonspatial relationship", "abnormal non-spatial relationships", "abnormal interaction",
         "fused objects"),
    ),
    ArtifactClass(
        7,
        "Abnormal spatial relationship",
        "object or component is placed in context where it does not belong.",
        "means",
        "object-agnostic/attribute-mis-binding",
        "Abnormal spatial relationship",
        ("spatial relationship", "abnormal spatial relationships", "abnormal spatial interaction",
         "abnormal position", "misplaced components"),
    ),
    ArtifactClass(
        8,
        "Abnormal texture",
        "the texture of an object is abnormal (e.g. a brick wall with unevenly shaped bricks).",
        "means",
        "object-agnostic/attribute-mis-binding",
        "Abnormal texture",
        ("abnormal textures", "texture", "textures", "weird texture", "strange texture", "unnatural texture"),
    ),
    ArtifactClass(
        9,
        "Luminance discrepancy",
        "mismatched light sources causing objects to have shadows in different directions.",
        "means",
        "lighting",
        "Luminance discrepancy",
        ("luminance discrepancies", "luminance", "inconsistent shadows", "inconsistent lighting",
         "shadow inconsistency", "mismatched shadows"),
    ),
    ArtifactClass(
        10,
        "Impractical luminosity",
        "unrealistic lighting, such as an indoor scene being too bright without visible light sources.",
        "means",
        "lighting",
        "Impractical luminosity",
        ("impractical luminosities", "luminosity", "unrealistic lighting", "unrealistic luminosity",
         "impractical lighting", "too bright"),
    ),
    ArtifactClass(
        11,
        "Localized blur",
        "specific areas or objects in the image appear out of focus or smeared.",
        "means",
        "others",
        "Localized blur",
        ("localised blur", "local blur", "localized blurs", "blur", "blurry", "blurred", "blurriness",
         "localizaed blur", "smeared"),
    ),
    ArtifactClass(
        12,
        "Other artifacts",
        "any other artifacts you observe but except the above categories.",
        "mean",
        "others",
        "Other artifacts",
        ("other artifact", "other artefacts", "other artefact", "others", "other"),
    ),
    ArtifactClass(
        13,
        "No artifacts",
        "there are no artifacts in this image. This is an option that is opposite to the above options.",
        "mean",
        "none",
        "No artifacts",
        ("no artifact", "no artefacts", "no artefact", "none", "no", "clean", "artifact free",
         "artifact-free", "without artifacts"),
    ),
)

NUM_CLASSES = len(CLASSES)
NO_ARTIFACTS_ID = 13
OTHER_ARTIFACTS_ID = 12
NO_ARTIFACTS = CLASSES[NO_ARTIFACTS_ID].name
OTHER_ARTIFACTS = CLASSES[OTHER_ARTIFACTS_ID].name
ARTIFACT_CLASSES: tuple[ArtifactClass, ...] = CLASSES[:NO_ARTIFACTS_ID]
NAMES: tuple[str, ...] = tuple(c.name for c in CLASSES)
ARTIFACT_NAMES: tuple[str, ...] = NAMES[:NO_ARTIFACTS_ID]

_NON_WORD = re.compile(r"[^a-z0-9]+")


def normalize_name(text: str) -> str:
    """Lower-case, turn every run of non-alphanumerics into one space, strip.

    >>> normalize_name("  Distorted-and-DEFORMED components. ")
    'distorted and deformed components'
    """
    return _NON_WORD.sub(" ", text.lower()).strip()


def _build_lookup() -> dict[str, ArtifactClass]:
    lookup: dict[str, ArtifactClass] = {}
    for cls in CLASSES:
        for key in (cls.name, *cls.aliases):
            norm = normalize_name(key)
            if norm in lookup and lookup[norm] is not cls:
                raise AssertionError(f"alias {key!r} maps to two classes")
            lookup[norm] = cls
    return lookup


_LOOKUP = _build_lookup()


def find_class(name: str) -> ArtifactClass | None:
    """Tolerant lookup: exact name, any case/punctuation, or a known alias; ``None`` if unknown.

    >>> find_class("illegible text").name
    'Illegible letters'
    >>> find_class("a dragon") is None
    True
    """
    if not isinstance(name, str):
        return None
    norm = normalize_name(name)
    hit = _LOOKUP.get(norm)
    if hit is None and norm.endswith("s"):
        hit = _LOOKUP.get(norm[:-1])
    return hit


def get_class(key: int | str) -> ArtifactClass:
    """Look a class up by id (0-13) or by (tolerant) name; ``KeyError`` listing valid values otherwise."""
    if isinstance(key, bool):
        raise KeyError(f"Expected a class id 0-{NUM_CLASSES - 1} or a class name, got {key!r}")
    if isinstance(key, int) or (hasattr(key, "__index__") and not isinstance(key, str)):
        idx = int(key)
        if 0 <= idx < NUM_CLASSES:
            return CLASSES[idx]
        raise KeyError(f"Unknown artifact class id {idx}: valid ids are 0-{NUM_CLASSES - 1} ({', '.join(NAMES)})")
    found = find_class(key)
    if found is None:
        raise KeyError(f"Unknown artifact class name {key!r}: valid names are {', '.join(NAMES)}")
    return found


def sort_labels(labels) -> list[str]:
    """Canonical names of ``labels`` (ids or names), de-duplicated, in taxonomy order.

    >>> sort_labels(["Omitted components", 3, "duplicate"])
    ['Duplicated components', 'Omitted components']
    """
    ids = {get_class(label).id for label in labels}
    return [CLASSES[i].name for i in sorted(ids)]
