"""Loading tokenizers and processors from a hub id or a local folder."""

from __future__ import annotations

import os
from typing import Any

# A local folder holds a tokenizer only if it has one of these (transformers would otherwise build an empty one
# from config.json alone, or guess a class and ask for sentencepiece, which points the wrong way).
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "vocab.txt", "tokenizer.model")


def get_tokenizer(path: str, trust_remote_code: bool = False, **kwargs: Any) -> Any:
    """``AutoTokenizer.from_pretrained`` with a pad token guaranteed (falls back to EOS).

    A local folder without tokenizer files is refused, saying whether it is a model folder at all."""
    from transformers import AutoTokenizer

    if os.path.isdir(path) and not any(os.path.isfile(os.path.join(path, f)) for f in _TOKENIZER_FILES):
        files = ", ".join(_TOKENIZER_FILES)
        if os.path.isfile(os.path.join(path, "config.json")):
            raise OSError(f"cannot load a tokenizer from {path!r}: a model folder without tokenizer files ({files})")
        raise OSError(f"cannot load a tokenizer from {path!r}: not a model folder (no config.json, none of {files})")
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code, **kwargs)
    except (OSError, ValueError) as exc:  # transformers' message often does not name the path
        raise type(exc)(f"cannot load a tokenizer from {path!r} (a local model folder or a hub id): {exc}") from exc
    if len(tokenizer) < 2:
        raise OSError(f"cannot load a tokenizer from {path!r}: it loads with an empty vocabulary")
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
