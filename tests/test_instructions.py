import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from synartifact_hf import instructions
from synartifact_hf.taxonomy import NAMES

FIG11 = """You are my assistant to analyze this image. There are some options for you.
1. Illegible letters mean there are some distorted letters or text elements.
2. Awkward facial expression means person or animal has an abnormal facial expression.
3. Distorted and deformed components mean objects having details or shape that are not typical (e.g. distorted limbs).
4. Duplicated components mean repeated elements that should be unique in the scene (e.g. two identical clouds side by side).
5. Omitted components mean object misses components or is incomplete.
6. Chromatic irregularity means objects having colors that they don't usually possess (e.g. a blue apple).
7. Abnormal non-spatial relationship means abnormal interaction between two objects (e.g. two objects are fused).
8. Abnormal spatial relationship means object or component is placed in context where it does not belong.
9. Abnormal texture means the texture of an object is abnormal (e.g. a brick wall with unevenly shaped bricks).
10. Luminance discrepancy means mismatched light sources causing objects to have shadows in different directions.
11. Impractical luminosity means unrealistic lighting, such as an indoor scene being too bright without visible light sources.
12. Localized blur means specific areas or objects in the image appear out of focus or smeared.
13. Other artifacts mean any other artifacts you observe but except the above categories.
14. No artifacts mean there are no artifacts in this image. This is an option that is opposite to the above options.
I will give you two answer examples for reference. The first example is a template if there are no artifacts in the image. The second example is that five kinds of artifacts, Awkward facial expression, Distorted and deformed components, Duplicated components, Abnormal non-spatial relationship, Other artifacts, exist in the image.
Example 1:
1. No artifacts.
Example 2:
1. Awkward facial expression.
2. Distorted and deformed components.
3. Duplicated components.
4. Abnormal non-spatial relationship.
5. Other artifacts: The gown is out of frame.
The format of your answer should follow the format of examples. Don't make a long analysis, just give your choices. Every choice you make should be considered carefully. Conflicts between options should not exist in your reply. Your reply should be highly credible."""


def test_classification_instruction_is_figure_11_verbatim():
    assert instructions.classification_instruction() == FIG11


def test_headings_are_optional_and_wrap_the_same_text():
    with_headings = instructions.classification_instruction(headings=True)
    lines = with_headings.splitlines()
    assert lines[0] == "Task description:"
    assert "Answer examples:" in lines and "Answer commands:" in lines
    assert [line for line in lines if line not in instructions.HEADINGS] == FIG11.splitlines()


def test_formatter_orders_and_numbers():
    assert instructions.format_classification_answer(["Omitted components", "Duplicated components"]) == (
        "1. Duplicated components.\n2. Omitted components."
    )
    assert instructions.format_classification_answer([]) == "1. No artifacts."
    assert instructions.format_classification_answer(["No artifacts"]) == "1. No artifacts."
    assert instructions.format_classification_answer([1, 12], "The gown is out of frame.") == (
        "1. Awkward facial expression.\n2. Other artifacts: The gown is out of frame."
    )
    # a caption implies "Other artifacts"
    assert instructions.format_classification_answer([], "blob") == "1. Other artifacts: blob"


def test_formatter_rejects_conflicts_and_unknowns():
    with pytest.raises(ValueError, match="conflicts"):
        instructions.format_classification_answer(["No artifacts", "Omitted components"])
    with pytest.raises(KeyError, match="valid names"):
        instructions.format_classification_answer(["dragons"])


def test_detection_answer_layout():
    text = instructions.format_detection_answer([(2, (0.1, 0.2, 0.3, 0.4))], other_caption="Out of frame.")
    assert text.splitlines() == [
        "Artifact judgement: Yes.",
        "Artifact classification:",
        "1. Distorted and deformed components.",
        "2. Other artifacts.",
        "Artifact location:",
        "1. Distorted and deformed components: [0.100, 0.200, 0.300, 0.400]",
        "Other artifacts caption: Out of frame.",
    ]
    instruction = instructions.detection_instruction()
    assert "336x336" in instruction and all(n in instruction for n in NAMES)


@pytest.mark.parametrize("width,height", [(768, 768), (512, 512), (1024, 768), (720, 1280), (1, 3)])
def test_padded_box_roundtrip_exact(width, height):
    boxes = [(0, 0, width, height), (1, 2, max(2, width - 3), max(3, height - 1)), (width // 3, height // 4, width // 2 + 1, height // 2 + 1)]
    for box in boxes:
        norm = instructions.pixel_to_padded(box, width, height)
        assert all(0.0 <= v <= 1.0 for v in norm)
        back = instructions.padded_to_pixel(norm, width, height)
        assert [round(v) for v in back] == list(box)
        assert max(abs(a - b) for a, b in zip(back, box)) < 1e-9


@given(
    st.integers(1, 4096), st.integers(1, 4096),
    st.floats(0, 1), st.floats(0, 1), st.floats(0, 1), st.floats(0, 1),
)
def test_padded_roundtrip_property(width, height, a, b, c, d):
    box = (a * width, b * height, c * width, d * height)
    back = instructions.padded_to_pixel(instructions.pixel_to_padded(box, width, height), width, height)
    assert all(math.isclose(x, y, abs_tol=1e-6 * max(width, height)) for x, y in zip(box, back))


def test_three_decimals_in_the_answer_stay_within_half_a_pixel_per_side():
    # The answer format keeps 3 decimals of the padded square: at most 0.0005 * side pixels off.
    width, height, box = 768, 512, (101, 57, 640, 500)
    norm = [round(v, 3) for v in instructions.pixel_to_padded(box, width, height)]
    back = instructions.padded_to_pixel(norm, width, height)
    assert max(abs(x - y) for x, y in zip(back, box)) <= 0.0005 * 768 + 1e-9


def test_padding_is_centered():
    # 512x256 -> padded to 512x512 with 128 rows above and below
    assert instructions.pixel_to_padded((0, 0, 512, 256), 512, 256) == (0.0, 0.25, 1.0, 0.75)
    with pytest.raises(ValueError, match="positive integers"):
        instructions.pixel_to_padded((0, 0, 1, 1), 0, 5)


def test_conversation_shape():
    conv = instructions.conversation("hi", "1. No artifacts.")
    assert conv[0] == {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "hi"}]}
    assert conv[1]["role"] == "assistant" and conv[1]["content"][0]["text"] == "1. No artifacts."


def test_render_prompt_needs_a_chat_template():
    class NoTemplate:
        chat_template = None
        tokenizer = None

    with pytest.raises(ValueError, match="no chat template"):
        instructions.render_prompt(NoTemplate())


def test_old_module_name_is_the_same_module():
    import synartifact_hf.prompts as old

    assert old is instructions and old.classification_instruction() == FIG11
