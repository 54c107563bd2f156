"""Security hygiene: no credential in any tracked file, keys only from environment variables, remote model
code off unless asked for, and the README saying what loading a reward function means."""

from __future__ import annotations

import dataclasses
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from secret_patterns import secret_like

from verl.trainer.config import PPOConfig
from verl.trainer.sft_config import SFTConfig
from verl.utils.config_utils import load_config

REPO = Path(__file__).resolve().parents[1]


def _tracked_files() -> list[Path]:
    proc = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, text=True, check=True)
    return [REPO / name for name in proc.stdout.split("\0") if name]


def test_no_tracked_file_holds_a_key() -> None:
    files = _tracked_files()
    assert len(files) > 50  # the scan really saw the repository
    hits = []
    for path in files:
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, FileNotFoundError, IsADirectoryError):
            continue  # binary files, or deleted but not yet committed
        for number, line in enumerate(text.splitlines(), 1):
            found = secret_like(line)
            if found:
                hits.append(f"{path.relative_to(REPO)}:{number}: {found[:12]}...")
    assert not hits, "credential-like strings in tracked files (use environment variables):\n" + "\n".join(hits)


# Built at run time so that this file holds no key-like string itself.
_KEYS = [
    "sk-" + "a1B2" * 5,
    "hf_" + "x9" * 12,
    "AIza" + "S" * 35,
    "AKIA" + "ABCD1234" * 2,
    "ghp_" + "k" * 36,
    "xoxb-" + "12345678901",
    "-----BEGIN " + "PRIVATE KEY-----",
    "api_key = '" + "q" * 20 + "'",
    "password: " + "hunter2hunter2",
    "JUDGE_API_KEY=" + "abc123def",
]


@pytest.mark.parametrize("line", _KEYS, ids=range(len(_KEYS)))
def test_the_patterns_catch_keys(line: str) -> None:
    assert secret_like(f"x {line} y")


@pytest.mark.parametrize(
    "line", ["api_key_env: JUDGE_API_KEY", "max_tokens: 32", "token_ids = tokenizer(text)", "sk-short"]
)
def test_the_patterns_leave_ordinary_code_alone(line: str) -> None:
    assert secret_like(line) is None


def _fields(config: Any, prefix: str = "") -> list[tuple[str, Any]]:
    out = []
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        name = f"{prefix}{field.name}"
        out.append((name, value))
        if dataclasses.is_dataclass(value):
            out += _fields(value, name + ".")
    return out


@pytest.mark.parametrize("config_cls", [PPOConfig, SFTConfig])
def test_keys_come_only_from_environment_variables(config_cls: type, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    fields = _fields(load_config(config_cls, []))
    secret = re.compile(r"(api_?key|secret|password|credential|(^|_)token$)")
    named = [name for name, _ in fields if secret.search(name.rsplit(".", 1)[-1])]
    assert all(name.endswith("_env") for name in named), named  # a key field names a variable, never holds a key
    assert any(name.endswith("api_key_env") for name in named) or config_cls is SFTConfig


@pytest.mark.parametrize("config_cls", [PPOConfig, SFTConfig])
def test_trust_remote_code_is_off_by_default(config_cls: type, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    flags = {name: value for name, value in _fields(load_config(config_cls, [])) if name.endswith("trust_remote_code")}
    assert flags and not any(flags.values()), flags


def test_readme_says_what_runs_as_code() -> None:
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("## Failure and recovery") :]
    assert "trust_remote_code" in section and "reward_function" in section and "environment" in section
