"""Loading tokenizers and processors from a hub id or a local folder."""

from __future__ import annotations

from typing import Any


def get_tokenizer(path: str, trust_remote_code: bool = False, **kwargs: Any) -> Any:
    """``AutoTokenizer.from_pretrained`` with a pad token guaranteed (falls back to EOS)."""
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code, **kwargs)
    except (OSError, ValueError) as exc:  # transformers' message often does not name the path
        raise type(exc)(f"cannot load a tokenizer from {path!r} (a local model folder or a hub id): {exc}") from exc
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def get_processor(path: str, trust_remote_code: bool = False, **kwargs: Any) -> Any | None:
    """The multimodal processor of a model, or None for text-only models (whose "processor" is a tokenizer)."""
    from transformers import AutoProcessor

    try:
        processor = AutoProcessor.from_pretrained(path, trust_remote_code=trust_remote_code, **kwargs)
    except (OSError, ValueError, TypeError, KeyError):
        return None
    if processor is None or not hasattr(processor, "image_processor"):
        return None  # AutoProcessor returns the bare tokenizer for text-only models
    return processor
