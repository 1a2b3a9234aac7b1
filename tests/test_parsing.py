import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from synartifact_hf.instructions import format_classification_answer, format_detection_answer
from synartifact_hf.parsing import parse_answer
from synartifact_hf.taxonomy import ARTIFACT_NAMES, NAMES

DIST, DUP, OMIT, BLUR, OTHER = (
    "Distorted and deformed components", "Duplicated components", "Omitted components", "Localized blur",
    "Other artifacts",
)


@pytest.mark.parametrize(
    "answer, labels",
    [
        ("1. Duplicated components.\n2. Omitted components.", [DUP, OMIT]),
        ("1) duplicated components\n2) omitted components", [DUP, OMIT]),
        ("- Duplicated components\n- Omitted components", [DUP, OMIT]),
        ("* DUPLICATED COMPONENTS.\n* omitted components!!", [DUP, OMIT]),
        ("Duplicated components\nOmitted components", [DUP, OMIT]),
        ("Duplicated components, Omitted components", [DUP, OMIT]),
        ("duplicated components; omitted components.", [DUP, OMIT]),
        ("1. Duplicated components. 2. Omitted components.", [DUP, OMIT]),
        ("Distortion", [DIST]),
        ("distorted components", [DIST]),
        ("duplicate", [DUP]),
        ("blurry", [BLUR]),
        ("illegible text", ["Illegible letters"]),
        ("1. Distroted and deformed components.", [DIST]),
        ("**Omitted components**", [OMIT]),
        ("1. No artifacts.", ["No artifacts"]),
        ("no artifacts", ["No artifacts"]),
        # list numbers are counters: "5." does not mean option 5
        ("5. Localized blur.", [BLUR]),
    ],
)
def test_variants(answer, labels):
    result = parse_answer(answer)
    assert result.labels == labels
    assert result.issues == []


def test_other_artifacts_caption():
    result = parse_answer("1. Awkward facial expression.\n2. Other artifacts: The gown is out of frame.")
    assert result.labels == ["Awkward facial expression", OTHER]
    assert result.other_caption == "The gown is out of frame."
    # commas inside a caption do not split it into options
    assert parse_answer("Other artifacts: blurry, duplicate hands").labels == [OTHER]
    # "Other artifacts: None" says there are none, like the release's "None" caption: no label
    result = parse_answer("1. No artifacts.\n2. Other artifacts: None")
    assert result.labels == ["No artifacts"] and result.other_caption is None and not result.conflict


def test_negated_mentions_are_not_labels():
    result = parse_answer("There are no duplicated components, but the image has illegible text.")
    assert result.labels == ["Illegible letters"]
    result = parse_answer("Not distorted components.")
    assert result.labels == [] and result.unmapped == ["Not distorted components"]


def test_no_artifacts_with_artifacts_is_a_flagged_conflict():
    result = parse_answer("1. No artifacts.\n2. Localized blur.")
    assert result.labels == [BLUR]
    assert result.conflict and any("conflict" in i for i in result.issues)
    assert result.has_artifacts is True


@pytest.mark.parametrize("garbage", ["", "   \n ", "hello world", "42", "Example 1:", "\x00\x01"])
def test_empty_or_garbage_is_never_no_artifacts(garbage):
    result = parse_answer(garbage)
    assert result.labels == []
    assert result.has_artifacts is None
    assert result.issues


def test_non_string_is_reported_not_raised():
    assert parse_answer(None).issues == ["answer is not a string (NoneType)"]


def test_unmapped_fragments_are_kept():
    result = parse_answer("1. Omitted components.\n2. Too many dragons.")
    assert result.labels == [OMIT]
    assert result.unmapped == ["Too many dragons"]
    assert any("unmapped" in issue for issue in result.issues)


def test_detection_answer():
    text = format_detection_answer(
        [(DIST, (0.1, 0.2, 0.3, 0.4)), (OMIT, (0.5, 0.5, 0.75, 0.9))], other_caption="Out of frame."
    )
    result = parse_answer(text)
    assert result.judgement is True
    assert result.labels == [DIST, OMIT, OTHER]
    assert result.boxes == [
        {"label": DIST, "bbox": [0.1, 0.2, 0.3, 0.4]},
        {"label": OMIT, "bbox": [0.5, 0.5, 0.75, 0.9]},
    ]
    assert result.other_caption == "Out of frame."
    assert result.issues == []
    clean = parse_answer(format_detection_answer([]))
    assert clean.labels == ["No artifacts"] and clean.judgement is False and clean.boxes == []


def test_detection_judgement_conflict():
    result = parse_answer("Artifact judgement: No.\nArtifact classification:\n1. Omitted components.")
    assert result.labels == [OMIT] and result.conflict


def test_to_dict_is_json_able():
    import json

    json.dumps(parse_answer("1. Omitted components.").to_dict())


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_never_raises_and_stays_in_taxonomy(text):
    result = parse_answer(text)
    assert set(result.labels) <= set(NAMES)
    assert result.labels == sorted(result.labels, key=NAMES.index)
    assert not ("No artifacts" in result.labels and len(result.labels) > 1)


caption_text = st.text(
    alphabet=st.characters(whitelist_categories=("Lu", "Ll", "Zs"), whitelist_characters=".,'!?-"),
    min_size=1,
).filter(lambda s: any(ch.isalpha() for ch in s) and s.strip().lower().strip(".") not in {"none", "no", "n a", "na", "nothing"})


@settings(max_examples=300, deadline=None)
@given(st.sets(st.sampled_from(ARTIFACT_NAMES)), st.one_of(st.none(), caption_text))
def test_format_then_parse_is_identity(labels, caption):
    text = format_classification_answer(labels, other_caption=caption)
    result = parse_answer(text)
    expected = set(labels) | ({OTHER} if caption and caption.strip() else set())
    assert result.labels == [n for n in NAMES if n in expected] or (not expected and result.labels == ["No artifacts"])
    assert result.other_caption == (caption.strip() if caption and caption.strip() else None)
    assert result.issues == []
