"""Optional packages: a missing one raises naming the extra to install."""

from __future__ import annotations

import sys

import pytest

from verl.utils.import_utils import MissingDependencyError, require


def test_require_returns_installed_module() -> None:
    assert require("json").dumps([1]) == "[1]"


def test_missing_optional_package_names_the_extra(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "swanlab", None)  # makes the import fail even when installed
    with pytest.raises(MissingDependencyError, match=r"trainer.logger=swanlab needs .*vision-sr1\[loggers\]"):
        require("swanlab")


def test_unknown_missing_module_raises_plain_import_error() -> None:
    with pytest.raises(ImportError) as info:
        require("no_such_module_xyz")
    assert not isinstance(info.value, MissingDependencyError)
