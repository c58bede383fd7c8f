import pytest

from backend.errors import InvalidInput
from backend.clip.prompts import WeightedPrompt, describe, normalised_weights, parse_prompts


def test_plain_text_is_one_prompt_of_weight_one_commas_and_all():
    assert parse_prompts("  a city at night,   rain ") == [WeightedPrompt("a city at night, rain", 1.0)]


def test_weighted_prompts_parse_in_order_and_normalise():
    prompts = parse_prompts("ink in water:1, gold leaf:0.5")
    assert prompts == [WeightedPrompt("ink in water", 1.0), WeightedPrompt("gold leaf", 0.5)]
    assert normalised_weights(prompts) == pytest.approx([2 / 3, 1 / 3])
    assert describe(prompts) == "ink in water (0.67) + gold leaf (0.33)"


def test_parts_without_a_weight_get_weight_one():
    assert parse_prompts("neon:2, rain") == [WeightedPrompt("neon", 2.0), WeightedPrompt("rain", 1.0)]
    assert parse_prompts("fog:1e-1") == [WeightedPrompt("fog", 0.1)]


@pytest.mark.parametrize("text, message", [
    ("", "prompt is empty"),
    ("   ", "prompt is empty"),
    ("ink:abc", "'abc' in prompt part 'ink:abc' is not a number"),
    ("ink:0", "must be a finite number > 0, got 0"),
    ("ink:-1", "put things to avoid in the negative prompt"),
    ("ink:nan", "finite number > 0"),
    ("ink:", "'' in prompt part 'ink:' is not a number"),
    (":0.5", "has a weight but no text"),
    ("a:1,,b:1", "empty part between commas"),
])
def test_bad_prompts_name_the_problem(text, message):
    with pytest.raises(InvalidInput, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_prompts(text)


def test_negative_prompt_may_be_empty_and_names_itself_in_errors():
    assert parse_prompts(None, what="negative prompt", allow_empty=True) == []
    assert parse_prompts("text, watermark", what="negative prompt", allow_empty=True) == [
        WeightedPrompt("text, watermark", 1.0)]
    with pytest.raises(InvalidInput, match="negative prompt part 'blur:x'"):
        parse_prompts("blur:x", what="negative prompt", allow_empty=True)


def test_too_many_parts_are_refused():
    with pytest.raises(InvalidInput, match="at most 16"):
        parse_prompts(", ".join(f"p{i}:1" for i in range(17)))
