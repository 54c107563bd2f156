"""Every config key does something: each field of the RL and SFT config trees is read somewhere in ``verl/``
outside the config modules, or a non-default value of it is refused at start-up with an error naming it, or it
is on the short allow-list below with the reason.

"Read" is found by name (``.field_name`` not followed by ``=``) in the package source, so a field that shares
its name with one read elsewhere (``worker.ref.offload.offload_params`` and the actor's) counts as read; the
test catches keys whose name nothing reads, the way accepted-and-ignored keys come in.
"""

from __future__ import annotations

import dataclasses
import re
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from verl.trainer.config import PPOConfig
from verl.trainer.sft_config import SFTConfig
from verl.utils.config_utils import ConfigError, load_config

PACKAGE = Path(__file__).resolve().parents[2] / "verl"
CONFIG_MODULES = {"trainer/config.py", "trainer/sft_config.py", "workers/config.py", "utils/config_utils.py"}

ALLOWED_UNREAD: dict[str, str] = {
    "trainer.find_last_checkpoint": "mapped onto trainer.resume_mode in post_init; the loop reads resume_mode",
}
"""Fields read nowhere by name, each with the reason that is fine. An entry whose field is read by now must go."""


@dataclasses.dataclass(frozen=True)
class Field:
    root: type
    key: str
    name: str
    default: Any
    type: Any
    settable: bool
    derived_from: str | None


def _fields(cls: type, prefix: str = "", root: type | None = None) -> Iterator[Field]:
    root = root or cls
    hints = typing.get_type_hints(cls)
    instance = cls()
    for f in dataclasses.fields(cls):
        key = f"{prefix}.{f.name}" if prefix else f.name
        tp = hints[f.name]
        if isinstance(tp, type) and dataclasses.is_dataclass(tp):
            yield from _fields(tp, key, root)
            continue
        source = f.metadata.get("derived_from")
        yield Field(root, key, f.name, getattr(instance, f.name), tp, f.init, source)


FIELDS = [*_fields(PPOConfig), *[f for f in _fields(SFTConfig) if f.key.startswith(("data.", "trainer."))]]
"""The RL tree, and the SFT sections that are not the shared ``worker.actor`` section."""


def _package_source() -> str:
    return "\n".join(
        path.read_text(encoding="utf-8")
        for path in sorted(PACKAGE.rglob("*.py"))
        if path.relative_to(PACKAGE).as_posix() not in CONFIG_MODULES
    )


SOURCE = _package_source()


def _is_read(name: str) -> bool:
    attribute = rf"\.{re.escape(name)}\b(?!\s*=[^=])"
    by_getattr = rf"getattr\([^,()]+,\s*[\"']{re.escape(name)}[\"']"  # configs duck-typed in unit tests
    return re.search(f"{attribute}|{by_getattr}", SOURCE) is not None


def _other_value(field: Field) -> str | None:
    """A value different from the default, as command-line text, or None when the type has no obvious one."""
    tp, default = field.type, field.default
    options = [arg for arg in typing.get_args(tp) if arg is not type(None)] or [tp]
    base = options[0]
    if base is bool:
        return str(not default).lower()
    if base is int:
        return str((default or 1) * 4 + 4)
    if base is float:
        return str((default or 1.0) * 2 + 1.0)
    if base is str:
        return "other_value"
    return None


def _is_refused(field: Field, tmp_path: Path) -> bool:
    """Whether a non-default value of the field stops the config with an error naming the field."""
    if not field.settable:
        source = next((f for f in FIELDS if f.key == field.derived_from and f.root is field.root), None)
        return source is not None and _is_refused(source, tmp_path)
    value = _other_value(field)
    if value is None:
        return False
    try:
        load_config(field.root, [f"{field.key}={value}", f"trainer.save_checkpoint_path={tmp_path}"])
    except ConfigError as exc:
        return field.key in str(exc)
    return False


@pytest.mark.parametrize("field", FIELDS, ids=[f"{f.root.__name__}:{f.key}" for f in FIELDS])
def test_every_config_field_is_read_refused_or_allowed(field: Field, tmp_path: Path) -> None:
    if field.key in ALLOWED_UNREAD:
        assert not _is_read(field.name), (
            f"{field.key} is read now: remove it from ALLOWED_UNREAD ({ALLOWED_UNREAD[field.key]})"
        )
        return
    assert _is_read(field.name) or _is_refused(field, tmp_path), (
        f"{field.key} is accepted but nothing in verl/ reads .{field.name}: implement it, refuse a non-default "
        "value in post_init, or add it to ALLOWED_UNREAD with the reason"
    )


def test_allow_list_names_existing_fields() -> None:
    keys = {f.key for f in FIELDS}
    assert sorted(set(ALLOWED_UNREAD) - keys) == []


def test_the_check_finds_an_unread_field() -> None:
    assert _is_read("offload_params") and not _is_read("no_such_config_field")
