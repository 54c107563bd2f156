"""Strings that look like credentials, shared by the repository scan (``test_security.py``) and the script
checks (``test_examples.py``). Keys belong in environment variables, never in tracked files."""

from __future__ import annotations

import re

SECRET_PATTERNS = [
    re.compile(r"\bsk-[A-Za-z0-9_-]{16,}"),  # OpenAI-style keys
    re.compile(r"\bhf_[A-Za-z0-9]{20,}"),  # Hugging Face tokens
    re.compile(r"\bAIza[0-9A-Za-z_-]{30,}"),  # Google API keys
    re.compile(r"\bAKIA[0-9A-Z]{16}\b"),  # AWS access key ids
    re.compile(r"\bgh[pousr]_[A-Za-z0-9]{30,}"),  # GitHub tokens
    re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}"),  # Slack tokens
    re.compile(r"-----BEGIN (?:RSA |EC |OPENSSH |DSA )?PRIVATE KEY-----"),
    re.compile(r"(?i)\b(?:api_key|apikey|token|secret|password)\b\s*[:=]\s*['\"]?[A-Za-z0-9_-]{8,}"),
    re.compile(
        r"(?i)\b(?:WANDB_API_KEY|OPENAI_API_KEY|HF_TOKEN|SELF_REWARD_API_KEY|JUDGE_API_KEY|GEMINI_API_KEY"
        r"|GOOGLE_API_KEY)=[\w-]{6,}"
    ),
]


def secret_like(line: str) -> str | None:
    """The first credential-like substring of ``line``, or None."""
    for pattern in SECRET_PATTERNS:
        match = pattern.search(line)
        if match:
            return match.group(0)
    return None
