"""The parser on the kinds of output chat models really write (several lines taken from SmolLM2)."""

from __future__ import annotations

import pytest

from mlx_distill.augment.parse import clean_line, parse_output

MESSY = """Sure! Here are 5 examples of "shopping" notes:

1. Buy milk and eggs
2) "Pick up bread from the bakery"
- Get new running shoes
* **Order printer ink**
• “Return the jacket to the store”
(6) Grab coffee beans
#7 Renew the gym membership card
Example 8: Buy a gift for Sam
I hope this helps! Let me know if you need more.
9. Buy a birthday present for"""


def test_messy_output_yields_the_texts_and_counts_every_other_line():
    parsed = parse_output(MESSY, truncated=True, label="shopping")
    assert parsed.candidates == [
        "Buy milk and eggs", "Pick up bread from the bakery", "Get new running shoes", "Order printer ink",
        "Return the jacket to the store", "Grab coffee beans", "Renew the gym membership card", "Buy a gift for Sam",
    ]
    reasons = sorted(reason for _, reason in parsed.rejected)
    assert reasons == ["cut_off", "meta", "meta"]
    assert ("9. Buy a birthday present for", "cut_off") in parsed.rejected


def test_last_line_kept_when_generation_ended_on_its_own():
    parsed = parse_output("1. Buy milk\n2. Buy a birthday present for Ann\n", truncated=False)
    assert parsed.candidates == ["Buy milk", "Buy a birthday present for Ann"]
    assert parsed.rejected == []


def test_cut_off_drops_the_last_non_empty_line_even_after_blank_lines():
    parsed = parse_output("Buy milk\nBuy tea\n\n  \n", truncated=True)
    assert parsed.candidates == ["Buy milk"]
    assert parsed.rejected == [("Buy tea", "cut_off")]


@pytest.mark.parametrize("line", [
    "Here are 5 new, different texts labelled \"health\" (the labels of this task are: shopping, health):",
    "Sure!", "Certainly, here you go:", "Of course! Here's a list:", "I hope these help.",
    "Let me know if you want more examples.", "Note: these are fictional.", "Examples:", "## Shopping notes",
    "health", "**Health:**",
    # seen from SmolLM2-135M-Instruct on the demo notes
    "In this task, the new texts require a more creative, self-edited, and short-form text creation. Here's a few examples.",
    '(Note: This text is a new one that begins with the word, "Heroes", and adds a few new examples',
    "These are great examples of text conveying a range of subjects in context. Here is one of them:",
    'Five more texts labelled "health" follow.',
])
def test_meta_lines_are_rejected(line):
    text, reason = clean_line(line, label="health")
    assert reason == "meta", text


@pytest.mark.parametrize("line, expected", [
    ("1. Buy milk", "Buy milk"), ("12) Call the pharmacy", "Call the pharmacy"), ("- Take vitamins", "Take vitamins"),
    ("* Take vitamins", "Take vitamins"), ("• Take vitamins", "Take vitamins"), ("– Take vitamins", "Take vitamins"),
    ('"Book a flu shot"', "Book a flu shot"), ("'Book a flu shot'", "Book a flu shot"),
    ("“Book a flu shot”", "Book a flu shot"), ('1. "Book a flu shot"', "Book a flu shot"),
    ("health: Book a flu shot", "Book a flu shot"), ("**Text:** Book a flu shot", "Book a flu shot"),
    ("3. - Book a flu shot", "Book a flu shot"), ("Walk 10,000 steps: every day", "Walk 10,000 steps: every day"),
])
def test_markers_and_quotes_are_stripped(line, expected):
    assert clean_line(line, label="health") == (expected, None)


def test_a_json_array_answer_gives_its_items():
    parsed = parse_output('```json\n["Buy milk", {"text": "Buy tea"}, 3]\n```')
    assert parsed.candidates == ["Buy milk", "Buy tea"]


def test_rules_fences_and_blank_lines_are_ignored_not_counted():
    parsed = parse_output("---\n\nBuy milk\n```\n***\n")
    assert parsed.candidates == ["Buy milk"]
    assert parsed.rejected == []


@pytest.mark.parametrize("line, reason", [
    # seen from SmolLM2-135M-Instruct on BANKING77: the teacher keeps them, since they name the label
    ('5 thoughts to "pending_cash_withdrawal" without bold or numbered', "meta"),
    ("*That's right, pending_cash_withdrawal, we're talking about how to collect money", "meta"),
    ("pending_cash_withdrawal: Why is my cash withdrawal still pending?", None),  # a label prefix is stripped
    ("My cash withdrawal is still pending", None),
])
def test_a_line_naming_an_identifier_label_is_meta(line, reason):
    text, why = clean_line(line, label="pending_cash_withdrawal")
    assert why == reason, text


def test_a_plain_word_label_may_occur_in_a_real_row():
    assert clean_line("Get the shopping bags from the car", label="shopping") == (
        "Get the shopping bags from the car", None)
