"""The parts of a grounded answer that need no server: citation clean-up (whole and
streamed in any split), relevance, the prompt and the extractive answer."""

from __future__ import annotations

import pytest

from posturio.navigator.grounding import (
    INSTRUCTIONS,
    CitationStream,
    Passage,
    clean_citations,
    extractive_answer,
    grounded_messages,
    relevant,
    sources_footer,
)
from posturio.navigator.pipeline import embedder
from posturio.navigator.search import SearchHit


def hit(content: str, similarity: float | None = 0.5, uri: str = "a.md") -> SearchHit:
    return SearchHit(
        1, "Src", uri, "Title", "Title > Part", None, content, content, 0.1, similarity, 1, None
    )


@pytest.mark.parametrize(
    ("text", "provided", "cleaned", "cited"),
    [
        ("Yes [1].", 2, "Yes [1].", [1]),
        ("Yes [3].", 2, "Yes.", []),
        ("A [2][1] b [2].", 2, "A [2][1] b [2].", [2, 1]),
        ("A [1, 7, 2].", 2, "A [1][2].", [1, 2]),
        ("A [0] [12] c", 2, "A c", []),
        # Indexes and code are not citations.
        ("a[0] and sys.argv[1] stay [1].", 1, "a[0] and sys.argv[1] stay [1].", [1]),
        ("Run `ls [0]` then [2].", 1, "Run `ls [0]` then.", []),
        (
            "See:\n```python\nx = [0, 1]\ny = [7]\n```\nDone [1].",
            1,
            "See:\n```python\nx = [0, 1]\ny = [7]\n```\nDone [1].",
            [1],
        ),
        (
            "A lone ` tick ends at the line.\nThen [5].",
            2,
            "A lone ` tick ends at the line.\nThen.",
            [],
        ),
        ("No citations at all.", 3, "No citations at all.", []),
    ],
)
def test_citations_to_numbers_not_provided_are_removed(
    text: str, provided: int, cleaned: str, cited: list[int]
) -> None:
    assert clean_citations(text, provided) == (cleaned, cited)


STREAMED = (
    "Thirty days [1][9]. Booked in the portal [2, 12]. Many [1, 2, 3, 4, 5, 9] too. "
    "Code `a [3]` and\n```\nb = [0]\n```\nNot [0]. Trailing [1"
)


@pytest.mark.parametrize("size", [1, 2, 3, 5, 7, 100])
def test_streamed_citations_come_out_the_same_in_any_split(size: int) -> None:
    whole, cited = clean_citations(STREAMED, 2)
    stream = CitationStream(2)
    out = "".join(stream.feed(STREAMED[i : i + size]) for i in range(0, len(STREAMED), size))
    out += stream.flush()
    assert (
        out
        == whole
        == (
            "Thirty days [1]. Booked in the portal [2]. Many [1][2] too. "
            "Code `a [3]` and\n```\nb = [0]\n```\nNot. Trailing [1"
        )
    )
    assert stream.cited == cited == [1, 2]


def test_only_passages_close_in_meaning_are_answered_from() -> None:
    hits = [hit("a", 0.6), hit("b", None), hit("c", 0.1), hit("d", 0.3), hit("e", 0.9)]
    passages = relevant(hits, 0.25, 2)
    assert [(p.n, p.hit.content) for p in passages] == [(1, "a"), (2, "d")]


def test_prompt_numbers_the_sources_before_the_conversation() -> None:
    passages = [Passage(1, hit("Thirty days of leave.")), Passage(2, hit("Laptops.", uri="b.md"))]
    messages = grounded_messages([{"role": "user", "content": "leave?"}], passages)
    assert messages[0]["role"] == "system" and messages[0]["content"].startswith(INSTRUCTIONS)
    assert "[1] Title — Title > Part (a.md)\nThirty days of leave." in messages[0]["content"]
    assert "[2] Title — Title > Part (b.md)\nLaptops." in messages[0]["content"]
    assert messages[1:] == [{"role": "user", "content": "leave?"}]
    assert sources_footer(passages, [2]) == "\n\nSources:\n[2] Title — Title > Part (b.md)"
    assert sources_footer(passages, []) == ""


def test_extractive_answer_quotes_the_relevant_sentences_with_citations() -> None:
    passages = [
        Passage(
            1,
            hit(
                "The canteen opens at noon. Every employee gets thirty days of paid leave "
                "per year. Parking is free on weekends."
            ),
        ),
        Passage(2, hit("Laptops are handed out by IT. Broken ones go to the desk.")),
    ]
    answer = extractive_answer(
        "how many vacation days do I get?", passages, embedder("all-MiniLM-L6-v2"), per_passage=1
    )
    first, second = answer.splitlines()[2:]
    assert first == "- Every employee gets thirty days of paid leave per year. [1]"
    assert second.endswith("[2]") and "canteen" not in answer
