"""The config machinery on a small schema: CLI parsing, strict typing, key errors, precedence, (de)serialisation."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import pytest
import yaml

from verl.utils.config_utils import (
    ConfigError,
    build_config,
    config_to_dict,
    derived,
    format_config,
    load_config,
    load_yaml,
    parse_cli_args,
    require,
    run_post_init,
    save_config,
)


@dataclass
class Leaf:
    depth: int = 3
    ratio: float = 0.5

    def post_init(self) -> None:
        require(self.depth >= 0, "depth", f"must be >= 0, got {self.depth}")


@dataclass
class Inner:
    count: int = 1
    rate: float = 0.1
    name: str = "x"
    flag: bool = False
    mode: Literal["fast", "slow"] = "fast"
    tags: list[str] = field(default_factory=lambda: ["p"])
    sinks: list[Literal["console", "file"]] = field(default_factory=lambda: ["console"])
    pair: tuple[float, float] = (0.9, 0.99)
    extra: dict[str, Any] = field(default_factory=dict)
    weights: dict[str, float] = field(default_factory=dict)
    maybe: int | None = None
    leaf: Leaf = field(default_factory=Leaf)
    doubled: int = derived(0, "outer.size")

    def post_init(self) -> None:
        require(self.count >= 0, "count", f"must be >= 0, got {self.count}")


@dataclass
class Outer:
    renamed_keys: ClassVar[dict[str, str]] = {"old_size": "size"}

    size: int = 2
    inner: Inner = field(default_factory=Inner)
    post_init_calls: int = derived(0)

    def post_init(self) -> None:
        self.inner.doubled = self.size * 2
        self.post_init_calls += 1


def build(data: dict) -> Outer:
    return build_config(Outer, data)


def error_of(data: dict) -> str:
    with pytest.raises(ConfigError) as info:
        build(data)
    return str(info.value)


# ----------------------------------------------------------------------------- command line


def test_parse_cli_args_nests_dotted_keys_and_types_values() -> None:
    path, overrides = parse_cli_args(
        ["config=run.yaml", "a.b.c=true", "a.b.d=1e-6", "a.l=[x,y]", "a.n=null", "a.m={k: 1}", "a.i=8", "a.s=hello"]
    )
    assert path == "run.yaml"
    assert overrides == {
        "a": {"b": {"c": True, "d": 1e-6}, "l": ["x", "y"], "n": None, "m": {"k": 1}, "i": 8, "s": "hello"}
    }


def test_parse_cli_args_later_wins_and_empty_value_is_empty_string() -> None:
    _, overrides = parse_cli_args(["a.b=1", "a.b=2", "a.c="])
    assert overrides == {"a": {"b": 2, "c": ""}}


@pytest.mark.parametrize("arg", ["worker.rollout.n", "--config", "=5"])
def test_parse_cli_args_rejects_argument_without_key_value(arg: str) -> None:
    with pytest.raises(ConfigError, match="not of the form key=value") as info:
        parse_cli_args(["a=1", arg])
    assert repr(arg) in str(info.value)


def test_parse_cli_args_rejects_bad_key_and_bad_value() -> None:
    with pytest.raises(ConfigError, match="dotted key"):
        parse_cli_args(["a..b=1"])
    with pytest.raises(ConfigError, match="cannot parse the value"):
        parse_cli_args(["a.b=[x"])
    assert parse_cli_args(["a.t={{ content }} Answer: x"])[1] == {"a": {"t": "{{ content }} Answer: x"}}


# ----------------------------------------------------------------------------- types


def test_defaults_and_typed_conversion() -> None:
    cfg = build(
        {
            "inner": {
                "count": 8.0,
                "rate": 3,
                "name": 7,
                "flag": "TRUE",
                "mode": "slow",
                "tags": "a, b,,c",
                "sinks": "console,file",
                "pair": [0.8, 1],
                "weights": {"accuracy": 1},
                "maybe": None,
                "leaf": None,
            }
        }
    )
    inner = cfg.inner
    assert (inner.count, inner.rate, inner.name, inner.flag, inner.mode) == (8, 3.0, "7", True, "slow")
    assert isinstance(inner.count, int) and isinstance(inner.rate, float)
    assert inner.tags == ["a", "b", "c"] and inner.sinks == ["console", "file"]
    assert inner.pair == (0.8, 1.0) and isinstance(inner.pair, tuple)
    assert inner.weights == {"accuracy": 1.0} and isinstance(inner.weights["accuracy"], float)
    assert inner.leaf == Leaf() and cfg.size == 2


def test_numeric_strings_from_yaml_1_1_are_numbers() -> None:
    cfg = build({"size": "1e3", "inner": {"rate": "1e-6", "count": "8"}})
    assert cfg.size == 1000 and cfg.inner.rate == 1e-6 and cfg.inner.count == 8


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"inner": {"count": "eight"}}, "inner.count: expected int, got 'eight' (str)"),
        ({"inner": {"count": True}}, "inner.count: expected int, got True (bool)"),
        ({"inner": {"count": 8.5}}, "inner.count: expected int, got 8.5 (float)"),
        ({"inner": {"rate": "fast"}}, "inner.rate: expected float, got 'fast' (str)"),
        ({"inner": {"rate": False}}, "inner.rate: expected float, got False (bool)"),
        ({"inner": {"flag": "maybe"}}, "inner.flag: expected bool, got 'maybe' (str)"),
        ({"inner": {"flag": 1}}, "inner.flag: expected bool, got 1 (int)"),
        ({"inner": {"name": True}}, "inner.name: expected str, got True (bool)"),
        ({"inner": {"name": [1]}}, "inner.name: expected str, got [1] (list)"),
        ({"inner": {"tags": 5}}, "inner.tags: expected list of str, got 5 (int)"),
        ({"inner": {"pair": [1.0]}}, "inner.pair: expected list of 2 (float, float), got 1 item(s)"),
        ({"inner": {"extra": [1]}}, "inner.extra: expected mapping of str to any value, got [1] (list)"),
        ({"inner": {"weights": {"a": "x"}}}, "inner.weights.a: expected float, got 'x' (str)"),
        ({"inner": {"maybe": "x"}}, "inner.maybe: expected int or null, got 'x' (str)"),
        ({"inner": 5}, "inner: is a config section (keys: count, rate,"),
        ({"inner": {"leaf": "deep"}}, "inner.leaf: is a config section (keys: depth, ratio) and needs a mapping"),
    ],
)
def test_wrong_types_name_key_value_and_expected_type(data: dict, expected: str) -> None:
    assert expected in error_of(data)


def test_literal_error_lists_choices_and_suggests() -> None:
    message = error_of({"inner": {"mode": "slwo"}})
    assert "inner.mode: expected one of 'fast', 'slow', got 'slwo' (str); did you mean 'slow'?" in message
    message = error_of({"inner": {"sinks": ["console", "wandb"]}})
    assert "inner.sinks[1]: expected one of 'console', 'file', got 'wandb' (str)" in message


def test_none_section_and_none_mapping_mean_defaults() -> None:
    cfg = build({"inner": {"extra": None, "leaf": None}})
    assert cfg.inner.extra == {} and cfg.inner.leaf == Leaf()


# ----------------------------------------------------------------------------- keys


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"sise": 3}, "unknown config key 'sise'; did you mean 'size'?"),
        ({"inner": {"cuont": 3}}, "unknown config key 'inner.cuont'; did you mean 'inner.count'?"),
        ({"inner": {"leaf": {"dept": 1}}}, "unknown config key 'inner.leaf.dept'; did you mean 'inner.leaf.depth'?"),
        (
            {"inner": {"ratio": 1.0}},
            "unknown config key 'inner.ratio'; did you mean 'inner.leaf.ratio' or 'inner.rate'?",
        ),
        ({"inner": {"zzzz": 1}}, "unknown config key 'inner.zzzz'; valid keys under 'inner': count, rate, name"),
        ({"qqqq": 1}, "unknown config key 'qqqq'; valid keys at the top level: size, inner"),
    ],
)
def test_unknown_keys_name_the_dotted_key_and_suggest(data: dict, expected: str) -> None:
    assert expected in error_of(data)


def test_renamed_key_points_to_the_new_name() -> None:
    assert "config key 'old_size' was renamed: use 'size'" in error_of({"old_size": 3})


def test_renamed_key_loads_with_a_warning_naming_the_new_key(tmp_path, caplog) -> None:
    path = tmp_path / "old.yaml"
    path.write_text("old_size: 3\n")
    with caplog.at_level("WARNING", logger="verl.utils.config_utils"):
        cfg = load_config(Outer, ["config=" + str(path)])
    assert cfg.size == 3
    assert "config key 'old_size' was renamed: use 'size'" in caplog.text
    assert load_config(Outer, ["old_size=5"]).size == 5  # from the command line too
    with pytest.raises(ConfigError, match="'old_size' .* and 'size' are both set"):
        load_config(Outer, ["config=" + str(path), "size=4", "old_size=6"])


def test_derived_key_cannot_be_set_and_names_its_source() -> None:
    message = error_of({"inner": {"doubled": 4}})
    assert "'inner.doubled' cannot be set: it is derived at start-up from outer.size" in message
    assert "'post_init_calls' cannot be set: it is derived at start-up" in error_of({"post_init_calls": 1})


def test_several_problems_are_reported_together() -> None:
    message = error_of({"sise": 1, "inner": {"count": "x", "rate": "y"}})
    assert message.startswith("3 config errors:")
    assert "'sise'" in message and "inner.count" in message and "inner.rate" in message


# ----------------------------------------------------------------------------- load_config and post_init


def test_post_init_runs_children_first_and_prefixes_section_keys() -> None:
    cfg = load_config(Outer, ["size=5"])
    assert cfg.inner.doubled == 10 and cfg.post_init_calls == 1
    with pytest.raises(ConfigError, match=r"^inner\.count: must be >= 0, got -1$"):
        load_config(Outer, ["inner.count=-1"])
    with pytest.raises(ConfigError, match=r"^inner\.leaf\.depth: must be >= 0, got -2$"):
        load_config(Outer, ["inner.leaf.depth=-2"])


def test_parents_of_a_failed_section_are_not_post_initialised() -> None:
    cfg = build({"inner": {"count": -1, "leaf": {"depth": -2}}})
    with pytest.raises(ConfigError) as info:
        run_post_init(cfg)
    assert str(info.value) == "inner.leaf.depth: must be >= 0, got -2"  # inner's own check waits for its child
    assert cfg.post_init_calls == 0 and cfg.inner.doubled == 0


def test_precedence_defaults_yaml_overrides_cli(tmp_path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text("size: 3\ninner:\n  count: 4\n  rate: 1e-5\n  leaf:\n    depth: 7\n")
    cfg = load_config(
        Outer, ["config=" + str(path), "inner.count=9"], overrides={"inner.leaf.depth": 8, "inner": {"count": 6}}
    )
    assert cfg.size == 3  # YAML
    assert cfg.inner.rate == 1e-5  # YAML, numeric string
    assert cfg.inner.leaf.depth == 8  # overrides over YAML
    assert cfg.inner.count == 9  # CLI over everything
    assert cfg.inner.leaf.ratio == 0.5 and cfg.inner.name == "x"  # defaults kept


def test_interpolations_resolve_after_the_merge(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("VSR1_TEST_ROOT", "/data/root")
    path = tmp_path / "run.yaml"
    path.write_text("inner:\n  name: ${oc.env:VSR1_TEST_ROOT}/run-${size}\n  count: ${inner.leaf.depth}\n")
    cfg = load_config(Outer, ["config=" + str(path), "size=7"])
    assert cfg.inner.name == "/data/root/run-7"  # the CLI value of size, merged before resolution
    assert cfg.inner.count == 3  # a default that no source sets
    assert load_config(Outer, ["inner.name=${oc.env:VSR1_TEST_ROOT}"]).inner.name == "/data/root"
    with pytest.raises(ConfigError, match=r"^inner\.name: cannot resolve the value: .*VSR1_TEST_NOPE"):
        load_config(Outer, ["inner.name=${oc.env:VSR1_TEST_NOPE}"])
    with pytest.raises(ConfigError, match=r"^inner\.count: cannot resolve the value: .*nope"):
        load_config(Outer, ["inner.count=${nope}"])
    with pytest.raises(ConfigError, match="cannot parse the value"):
        load_config(Outer, ["inner.name=${inner.size"])
    with pytest.raises(ConfigError, match="cannot parse the value"):
        load_config(Outer, ["inner.name={{ x }} and ${inner.size"])


def test_a_list_or_scalar_over_a_mapping_reaches_the_type_check() -> None:
    with pytest.raises(ConfigError, match=r"inner\.extra: expected mapping of str to any value, got \[1\] \(list\)"):
        load_config(Outer, ["inner.extra=[1]"])
    with pytest.raises(ConfigError, match=r"inner\.leaf: is a config section"):
        load_config(Outer, ["inner.leaf=[1, 2]"])
    assert load_config(Outer, ["inner.tags={a: 1}", "inner.tags=[x]"]).inner.tags == ["x"]  # later wins


def test_yaml_path_argument_and_cli_config_takes_its_place(tmp_path) -> None:
    first, second = tmp_path / "a.yaml", tmp_path / "b.yaml"
    first.write_text("size: 3\n")
    second.write_text("size: 4\n")
    assert load_config(Outer, yaml_path=first).size == 3
    assert load_config(Outer, ["config=" + str(second)], yaml_path=first).size == 4


def test_empty_yaml_is_defaults(tmp_path) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text("# nothing\n")
    assert load_config(Outer, yaml_path=path) == load_config(Outer)


def test_missing_malformed_and_non_mapping_yaml(tmp_path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match="not found") as info:
        load_config(Outer, ["config=" + str(missing)])
    assert str(missing) in str(info.value)
    bad = tmp_path / "bad.yaml"
    bad.write_text("inner:\n  count: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML") as info:
        load_yaml(bad)
    assert str(bad) in str(info.value)
    listed = tmp_path / "list.yaml"
    listed.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="must hold a mapping"):
        load_yaml(listed)


# ----------------------------------------------------------------------------- output


def test_config_to_dict_and_save_load_round_trip(tmp_path) -> None:
    cfg = load_config(Outer, ["size=4", "inner.tags=[a,b]", "inner.extra={k: [1, 2]}", "inner.pair=[0.5,0.6]"])
    full = config_to_dict(cfg)
    assert full["inner"]["doubled"] == 8 and full["inner"]["pair"] == [0.5, 0.6]
    assert "doubled" not in config_to_dict(cfg, include_derived=False)["inner"]
    path = tmp_path / "out" / "saved.yaml"
    save_config(cfg, path)
    assert "doubled" not in yaml.safe_load(path.read_text())["inner"]
    assert load_config(Outer, yaml_path=path) == cfg


def test_format_config_shows_nested_keys_and_marks_derived() -> None:
    text = format_config(load_config(Outer, ["inner.leaf.depth=6"]))
    assert "inner:\n  count: 1\n" in text
    assert "  leaf:\n    depth: 6\n    ratio: 0.5" in text
    assert "doubled: 4  # derived from outer.size" in text
    assert "sinks: [console]" in text
