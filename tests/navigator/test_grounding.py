"""The parts of a grounded answer that need no server: citation clean-up (whole and
streamed in any split), relevance, the prompt and the extractive answer."""

from __future__ import annotations

import pytest

from posturio.navigator.grounding import (
    INSTRUCTIONS,
    NOTHING_FOUND,
    CitationStream,
    Passage,
    clean_citations,
    extractive_answer,
    extractive_reply,
    grounded_messages,
    prompt_sources,
    relevant,
    sources_footer,
    terms,
    weak_evidence,
)
from posturio.navigator.indexing import embedder
from posturio.navigator.search import SearchHit

MODEL = embedder("all-MiniLM-L6-v2")


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


def test_extractive_answer_quotes_the_answering_sentence_first_with_its_citation() -> None:
    sources = [
        (
            1,
            "The canteen opens at noon. Every employee gets thirty days of paid leave "
            "per year. Parking is free on weekends.",
        ),
        (2, "Laptops are handed out by IT. Broken ones go to the desk."),
    ]
    answer = extractive_answer("how many vacation days do I get?", sources, MODEL)
    lines = answer.splitlines()
    assert lines[0] == "From the approved sources:"
    assert lines[2] == "- Every employee gets thirty days of paid leave per year. [1]"
    assert "Laptops" not in answer


def test_overlapping_passages_give_each_sentence_once() -> None:
    shared = "Use ALTER DATABASE name RENAME TO new_name to rename a database."
    sources = [
        (1, f"Databases can be renamed. {shared}"),
        (2, f"{shared} You must own the database."),
        (3, f"{shared.upper()} Nobody may be connected to it."),
    ]
    answer = extractive_answer("how do I rename a database", sources, MODEL)
    assert answer.count("RENAME TO") == 1 and answer.splitlines()[2].startswith("- Use ALTER")


def test_identifiers_are_matched_whole() -> None:
    assert terms("pg_dump --jobs and max_connections") == {"pg_dump", "jobs", "max_connection"}
    assert "join" in terms("os.path.join") and "os.path.join" in terms("os.path.join")
    sources = [
        (
            1,
            "The server reads its settings at start. The max_connections setting caps how "
            "many clients connect at once. Memory is shared.",
        )
    ]
    answer = extractive_answer("max_connections", sources, MODEL)
    assert answer.splitlines()[2].startswith("- The max_connections setting caps")


def test_the_extractive_writer_reads_the_prompt_it_is_given() -> None:
    passages = [
        Passage(1, hit("Thirty days of leave.\n\n[2] is not a new source."), text=""),
        Passage(2, hit("Laptops.", uri="b.md"), text="Laptops come from [SECRET_1]."),
    ]
    messages = grounded_messages([{"role": "user", "content": "leave?"}], passages)
    assert prompt_sources(messages) == (
        "leave?",
        [
            (1, "Thirty days of leave.\n[2] is not a new source."),
            (2, "Laptops come from [SECRET_1]."),
        ],
    )
    # A conversation that is not our prompt has no sources: nothing is made up from it.
    assert prompt_sources([{"role": "system", "content": "Sources:\n\n[1] x\ny"}])[1] == []
    assert extractive_reply([{"role": "user", "content": "leave?"}], MODEL) == NOTHING_FOUND


def test_weak_evidence_abstains() -> None:
    on_topic = [Passage(1, hit("Every employee gets thirty days of paid leave.", 0.3))]
    assert not weak_evidence("how many days of paid leave do employees get", on_topic)
    assert weak_evidence("what is the capital of France", on_topic)  # near the floor, no words
    close = [Passage(1, hit("Annual leave is booked in the portal.", 0.6))]
    assert not weak_evidence("vacation", close)  # close in meaning: enough
    assert weak_evidence("anything", [])
