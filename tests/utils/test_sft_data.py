"""The cold-start data checks: each kind of bad record is caught and named by file and index; conversion of a
release-like local copy and of a (stubbed) hub snapshot; the download script's exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from verl.utils import sft_data
from verl.utils.sft_data import (
    SUBSETS,
    SFTDataError,
    convert_local,
    dataset_info,
    make_tiny_sft_set,
    validate_data_dir,
    validate_records,
)

REPO = Path(__file__).resolve().parents[2]
SEE = SUBSETS["vision_see_think"]
REASONER = SUBSETS["vision_reasoner"]
TEXT = SUBSETS["caption_reasoners_text"]
GOOD_SEE = "<description>a red circle</description> <think>one circle</think> \\boxed{1}"


@pytest.fixture(scope="module")
def tiny_sft(tiny_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_sft_set(tiny_dir, tmp_path_factory.mktemp("sft") / "data", rows=8)


def _image(folder: Path) -> str:
    from PIL import Image

    (folder / "img.png").parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), (255, 0, 0)).save(folder / "img.png")
    return "img.png"


def _vision(user: str = "<image>How many?", answer: str = GOOD_SEE, images: list | None = None) -> dict:
    return {
        "messages": [{"role": "user", "content": user}, {"role": "assistant", "content": answer}],
        "images": ["img.png"] if images is None else images,
    }


def test_tiny_set_is_clean_and_has_all_subsets(tiny_sft: Path) -> None:
    assert validate_data_dir(tiny_sft) == []
    for subset in SUBSETS.values():
        records = json.loads((tiny_sft / subset.file_name).read_text())
        assert len(records) == 8, subset.name
        assert all(subset.pattern.search(r.get("output") or r["messages"][-1]["content"]) for r in records)
    assert json.loads((tiny_sft / "vision_see_think.json").read_text())[0]["images"][0].startswith("images/")


def test_checked_in_dataset_info_matches_the_package() -> None:
    checked_in = json.loads((REPO / "LLaMA-Factory-Cold-Start" / "dataset_info.json").read_text())
    assert checked_in == dataset_info()


BAD = {
    "bad_record": ({"prompt": "no messages"}, SEE),
    "unknown_role": (
        {"messages": [{"role": "robot", "content": "x"}, {"role": "assistant", "content": GOOD_SEE}]},
        None,
    ),
    "roles_not_alternating": (
        {
            "messages": [
                {"role": "user", "content": "<image>q"},
                {"role": "user", "content": "again"},
                {"role": "assistant", "content": GOOD_SEE},
            ],
            "images": ["img.png"],
        },
        SEE,
    ),
    "ends_with_user": (
        {
            "messages": [
                {"role": "user", "content": "<image>q"},
                {"role": "assistant", "content": GOOD_SEE},
                {"role": "user", "content": "more?"},
            ],
            "images": ["img.png"],
        },
        SEE,
    ),
    "empty_content": (_vision(answer="   "), None),
    "image_count_mismatch": (_vision(user="<image><image>q"), SEE),
    "missing_image": (_vision(user="q", images=[]), SEE),
    "missing_image_file": (_vision(images=["nope.png"]), SEE),
    "unexpected_image": ({"instruction": "<image>q", "input": "", "output": "<think>t</think> \\boxed{1}"}, TEXT),
    "missing_tags_description": (_vision(answer="<think>t</think> \\boxed{1}"), SEE),
    "missing_tags_boxed": (_vision(answer="<think>t</think> the answer is 1"), REASONER),
}
KIND = {"ends_with_user": "roles_not_alternating", "missing_tags_description": "missing_tags",
        "missing_tags_boxed": "missing_tags"}  # fmt: skip


@pytest.mark.parametrize("case", sorted(BAD))
def test_each_kind_of_bad_record_is_named_by_file_and_index(case: str, tmp_path: Path) -> None:
    _image(tmp_path)
    bad, subset = BAD[case]
    good = (
        _vision() if subset is not TEXT else {"instruction": "q", "input": "", "output": "<think>t</think> \\boxed{1}"}
    )
    problems = validate_records([good, bad, good], "set.json", subset, tmp_path)
    assert problems, case
    assert {p.index for p in problems} == {1}
    assert KIND.get(case, case) in {p.kind for p in problems}
    assert str(problems[0]).startswith("set.json: record 1: ")


def test_good_records_of_each_subset_pass(tmp_path: Path) -> None:
    _image(tmp_path)
    text = {"instruction": "Text description: d\nQuestion: q", "input": "", "output": "<think>t</think>\\boxed{1}"}
    sharegpt = {"conversations": [{"from": "human", "value": "<image>q"}, {"from": "gpt", "value": GOOD_SEE}],
                "images": ["img.png"]}  # fmt: skip
    assert validate_records([_vision(), sharegpt], "a.json", SEE, tmp_path) == []
    assert validate_records([_vision(answer="<think>t</think> \\boxed{B}")], "b.json", REASONER, tmp_path) == []
    assert validate_records([text], "c.json", TEXT, tmp_path) == []


def test_bad_json_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "dataset_info.json").write_text(json.dumps(dataset_info()))
    (tmp_path / SEE.file_name).write_text("[{")
    with pytest.raises(SFTDataError, match=r"vision_see_think.json: record -1: bad_json"):
        validate_data_dir(tmp_path, ["vision_see_think"])


def _release_copy(folder: Path, tiny_sft: Path) -> None:
    """The release's shape: files named like the reference ones; one vision subset as parquet with bytes."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder.mkdir(parents=True)
    see = json.loads((tiny_sft / SEE.file_name).read_text())
    rows = []
    for r in see:
        rows.append({"messages": r["messages"], "images": [{"bytes": (tiny_sft / r["images"][0]).read_bytes(),
                                                             "path": None}]})  # fmt: skip
    pq.write_table(pa.Table.from_pylist(rows), folder / "train-00000.parquet")
    (folder / "A-caption_reasoners(text).json").write_text((tiny_sft / TEXT.file_name).read_text())


def test_convert_local_sorts_rows_into_subsets_and_validates(tiny_sft: Path, tmp_path: Path) -> None:
    _release_copy(tmp_path / "raw", tiny_sft)
    counts = convert_local(tmp_path / "raw", tmp_path / "out")
    assert counts == {"vision_see_think": 8, "vision_reasoner": 0, "caption_reasoners_text": 8}
    assert validate_data_dir(tmp_path / "out") == []


def test_download_uses_the_hub_dataset_repo(tiny_sft: Path, tmp_path: Path, monkeypatch) -> None:
    import huggingface_hub

    calls = {}

    def fake_snapshot_download(**kwargs):
        calls.update(kwargs)
        _release_copy(Path(kwargs["local_dir"]), tiny_sft)
        return str(kwargs["local_dir"])

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot_download)
    counts = sft_data.download_cold_start(tmp_path / "out")
    assert calls["repo_id"] == "LMMs-Lab-Turtle/Vision-SR1-Cold-9K" and calls["repo_type"] == "dataset"
    assert counts["vision_see_think"] == 8


def _script(*args: str) -> subprocess.CompletedProcess:
    script = REPO / "LLaMA-Factory-Cold-Start" / "download-sft-data.py"
    return subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, timeout=300)


def test_download_script_converts_validates_and_fails_on_bad_records(tiny_sft: Path, tmp_path: Path) -> None:
    _release_copy(tmp_path / "raw", tiny_sft)
    ok = _script("--from-local", str(tmp_path / "raw"), "--out", str(tmp_path / "out"))
    assert ok.returncode == 0, ok.stderr
    assert "0 bad records" in ok.stdout
    broken = json.loads((tmp_path / "out" / SEE.file_name).read_text())
    broken[3]["messages"][1]["content"] = "no tags"
    (tmp_path / "out" / SEE.file_name).write_text(json.dumps(broken))
    bad = _script("--check", str(tmp_path / "out"))
    assert bad.returncode == 1
    assert "vision_see_think.json: record 3: missing_tags" in bad.stdout + bad.stderr


def test_sft_dataset_refuses_bad_records_or_skips_and_counts(tiny_sft: Path, tiny_tokenizer, tiny_processor,
                                                             tmp_path: Path) -> None:  # fmt: skip
    from verl.utils.sft_dataset import SFTDataset

    records = json.loads((tiny_sft / SEE.file_name).read_text())
    records[2]["images"] = ["images/missing.png"]
    path = tmp_path / "set.json"
    path.write_text(json.dumps(records))
    (tmp_path / "images").symlink_to(tiny_sft / "images")
    with pytest.raises(SFTDataError, match=r"set.json: record 2: missing_image_file"):
        SFTDataset(str(path), tiny_tokenizer, tiny_processor)
    ds = SFTDataset(str(path), tiny_tokenizer, tiny_processor, skip_bad_rows=True)
    assert len(ds) == 7 and ds.skipped == {"missing_image_file": 1}
