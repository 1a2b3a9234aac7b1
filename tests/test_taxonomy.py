import pytest

from synartifact_hf import taxonomy as tx

PAPER_ORDER = [
    "Illegible letters", "Awkward facial expression", "Distorted and deformed components",
    "Duplicated components", "Omitted components", "Chromatic irregularity",
    "Abnormal non-spatial relationship", "Abnormal spatial relationship", "Abnormal texture",
    "Luminance discrepancy", "Impractical luminosity", "Localized blur", "Other artifacts", "No artifacts",
]


def test_ids_follow_raw_release_order():
    assert list(tx.NAMES) == PAPER_ORDER
    assert [c.id for c in tx.CLASSES] == list(range(14))
    assert tx.NO_ARTIFACTS_ID == 13 and tx.get_class(13).name == "No artifacts"
    assert tx.get_class(2).name == "Distorted and deformed components"  # the paper's "2" example
    assert len(tx.ARTIFACT_CLASSES) == 13 and not tx.get_class("No artifacts").is_artifact


def test_groups_from_the_paper():
    groups = {c.name: c.group for c in tx.CLASSES}
    assert groups["Illegible letters"] == groups["Awkward facial expression"] == "object-aware"
    for name in ("Distorted and deformed components", "Omitted components", "Duplicated components"):
        assert groups[name] == "object-agnostic/abnormal-components"
    for name in ("Chromatic irregularity", "Abnormal non-spatial relationship",
                 "Abnormal spatial relationship", "Abnormal texture"):
        assert groups[name] == "object-agnostic/attribute-mis-binding"
    assert groups["Luminance discrepancy"] == groups["Impractical luminosity"] == "lighting"
    assert groups["Localized blur"] == groups["Other artifacts"] == "others"
    assert all(c.group in tx.GROUPS for c in tx.CLASSES)


@pytest.mark.parametrize(
    "text, expected",
    [("distortion", 2), ("Distorted components", 2), ("DUPLICATE", 3), ("blurry", 11),
     ("illegible text", 0), ("No artifact", 13), ("abnormal non spatial relationship", 6),
     ("Abnormal spatial relationship", 7), ("  omitted-components. ", 4), (5, 5)],
)
def test_tolerant_lookup(text, expected):
    assert tx.get_class(text).id == expected


@pytest.mark.parametrize("bad", [14, -1, "a dragon", True])
def test_unknown_keys_list_valid_values(bad):
    with pytest.raises(KeyError, match="valid|Expected"):
        tx.get_class(bad)


def test_phrases_and_option_text():
    assert all(c.phrase for c in tx.CLASSES)
    assert tx.get_class(0).option_text == "1. Illegible letters mean there are some distorted letters or text elements."
    assert tx.get_class(1).option_text.startswith("2. Awkward facial expression means person or animal")
