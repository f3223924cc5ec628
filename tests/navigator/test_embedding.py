"""The offline default model: shapes, normalisation, and meaning (similar sentences
score higher than unrelated ones)."""

from __future__ import annotations

import numpy as np
import pytest

from posturio.navigator.chunking import chunk_document
from posturio.navigator.embedding import (
    DEFAULT_MODEL,
    Embedder,
    EmbeddingModelUnavailable,
    load_model,
    resolve_model_dir,
)
from posturio.navigator.parsing import parse


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    return Embedder()


def test_model_identity(embedder: Embedder) -> None:
    assert embedder.model_name == DEFAULT_MODEL == "all-MiniLM-L6-v2"
    assert embedder.dimension == 384
    assert embedder.max_seq_length == 256
    assert (resolve_model_dir() / "model.safetensors").is_file()
    # One model per process, whichever Embedder asks for it.
    assert Embedder(batch_size=8)._model is embedder._model is load_model(DEFAULT_MODEL)


def test_vectors_are_normalized_float32(embedder: Embedder) -> None:
    texts = [f"Request number {i} was routed to the fallback provider." for i in range(40)]
    vectors = embedder.encode(texts, batch_size=16)
    assert vectors.shape == (40, 384)
    assert vectors.dtype == np.float32
    assert vectors.flags["C_CONTIGUOUS"]
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    empty = embedder.encode([])
    assert empty.shape == (0, 384) and empty.dtype == np.float32


def test_batching_does_not_change_vectors(embedder: Embedder) -> None:
    texts = ["Rotate the API key.", "The audit log is append-only.", "Backups run nightly."]
    together = embedder.encode(texts, batch_size=3)
    one_by_one = np.vstack([embedder.encode([t]) for t in texts])
    np.testing.assert_allclose(together, one_by_one, atol=1e-5)


def test_similar_sentences_score_higher_than_unrelated(embedder: Embedder) -> None:
    query, similar, unrelated = embedder.encode(
        [
            "How do I reset my password?",
            "Steps to change a forgotten account password.",
            "The recipe needs two cups of flour and one egg.",
        ]
    )
    assert float(query @ similar) > float(query @ unrelated) + 0.3
    questions = embedder.encode(["Which database stores the vectors?", "Who approves sources?"])
    answers = embedder.encode(
        [
            "An administrator approves every source before it is indexed.",
            "Embeddings are kept in PostgreSQL with the pgvector extension.",
        ]
    )
    scores = questions @ answers.T
    assert scores[0, 1] > scores[0, 0]
    assert scores[1, 0] > scores[1, 1]


def test_chunks_encode_end_to_end(embedder: Embedder) -> None:
    doc = parse(
        b"# Keys\n\nRevoke a key from the console.\n\n## Rotation\n\n"
        + b"Rotating a key issues a new secret and keeps the old one valid for a day. " * 60,
        filename="keys.md",
    )
    chunks = chunk_document(doc)
    vectors = embedder.encode([c.embedding_text for c in chunks])
    assert vectors.shape == (len(chunks), 384)
    # Chunks fit the window, so the model reads them whole: re-encoding a chunk alone
    # or with its neighbours gives the same vector.
    np.testing.assert_allclose(
        vectors[-1], embedder.encode([chunks[-1].embedding_text])[0], atol=1e-5
    )


def test_unavailable_model_fails_clearly(tmp_path) -> None:
    with pytest.raises(EmbeddingModelUnavailable, match="not available offline"):
        Embedder("acme/model-that-is-not-here")
    with pytest.raises(EmbeddingModelUnavailable, match="does not look like a model"):
        resolve_model_dir(str(tmp_path))
