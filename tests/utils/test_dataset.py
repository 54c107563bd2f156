"""Prompt dataset: file kinds, chat rendering with image tokens, pixel bounds, bad rows, resumable loader."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image

from verl.protocol import DataProto
from verl.utils.dataset import DatasetError, ResumableDataLoader, RLHFDataset, load_rows, strip_image_placeholders


def _png(size: tuple[int, int] = (112, 112), colour: tuple[int, int, int] = (255, 0, 0)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="PNG")
    return buffer.getvalue()


def _write(path: Path, rows: list[dict]) -> str:
    image_type = pa.list_(pa.struct([("bytes", pa.binary()), ("path", pa.string())]))
    fields = [("problem", pa.string()), ("answer", pa.string())]
    if any("images" in r for r in rows):
        fields.append(("images", image_type))
    table = pa.Table.from_pylist(rows, schema=pa.schema(fields))
    pq.write_table(table, path)
    return str(path)


def _img(data: bytes | None) -> list[dict]:
    return [{"bytes": data, "path": None}]


def _dataset(path: str, tokenizer, processor, **kwargs) -> RLHFDataset:
    kwargs.setdefault("max_prompt_length", 256)
    return RLHFDataset(path, tokenizer, processor, **kwargs)


def _image_tokens(tokenizer, ids: torch.Tensor) -> int:
    return int((ids == tokenizer.convert_tokens_to_ids("<|image_pad|>")).sum())


def test_rows_render_to_chat_prompts_with_image_tokens(tiny_dir, any_tiny_processor) -> None:
    tiny_processor, tiny_tokenizer = any_tiny_processor, any_tiny_processor.tokenizer
    ds = _dataset(str(tiny_dir / "data" / "train.parquet"), tiny_tokenizer, tiny_processor)
    item = ds[0]
    assert item["input_ids"].shape == (256,) and item["attention_mask"].shape == (256,)
    assert item["position_ids"].shape == (3, 256)
    assert item["attention_mask"][0] == 0 and item["attention_mask"][-1] == 1, "prompts are left padded"
    # 112x112 image, 2x2 merge: 14 px patches (Qwen2.5-VL), or 16 px patches after a resize to 128 (Qwen3-VL)
    assert _image_tokens(tiny_tokenizer, item["input_ids"]) == 16
    text = tiny_tokenizer.decode(item["raw_prompt_ids"])
    assert text.startswith("<|im_start|>system") and text.endswith("<|im_start|>assistant\n")
    assert "<|vision_start|><|image_pad|><|vision_end|>" in text  # unexpanded: vLLM expands it
    assert item["raw_question"].startswith("<image>")
    assert int(item["attention_mask"].sum()) == ds.prompt_length(ds.rows[0])
    assert len(item["multi_modal_data"]["images"]) == 1


def test_pixel_bounds_change_the_number_of_image_tokens(tmp_path, tiny_tokenizer, tiny_processor) -> None:
    path = _write(tmp_path / "d.parquet", [{"problem": "<image>What?", "answer": "1", "images": _img(_png())}])
    small = _dataset(path, tiny_tokenizer, tiny_processor, max_pixels=56 * 56)[0]
    large = _dataset(path, tiny_tokenizer, tiny_processor, min_pixels=224 * 224)[0]
    assert _image_tokens(tiny_tokenizer, small["input_ids"]) == 4
    assert _image_tokens(tiny_tokenizer, large["input_ids"]) == 64
    assert small["multi_modal_data"]["images"][0].size == (56, 56)


def test_format_prompt_template_is_applied(tmp_path, tiny_tokenizer, tiny_processor) -> None:
    path = _write(tmp_path / "d.parquet", [{"problem": "<image>Count them.", "answer": "3", "images": _img(_png())}])
    template = tmp_path / "fmt.jinja"
    template.write_text("{{ content | trim }} Describe, then think, then box the answer.")
    item = _dataset(path, tiny_tokenizer, tiny_processor, format_prompt=str(template))[0]
    text = tiny_tokenizer.decode(item["raw_prompt_ids"])
    assert "<|vision_end|>Count them. Describe, then think, then box the answer.<|im_end|>" in text
    assert item["raw_question"] == "<image>Count them."
    with pytest.raises(DatasetError, match="does not exist"):
        _dataset(path, tiny_tokenizer, tiny_processor, format_prompt=str(tmp_path / "missing.jinja"))


def test_image_without_placeholder_goes_first_and_multiple_images(tmp_path, tiny_tokenizer, tiny_processor) -> None:
    rows = [
        {"problem": "What colour?", "answer": "red", "images": _img(_png())},
        {"problem": "Left <image> right <image> same?", "answer": "no",
         "images": _img(_png()) + _img(_png((56, 56)))},
    ]  # fmt: skip
    ds = _dataset(_write(tmp_path / "d.parquet", rows), tiny_tokenizer, tiny_processor)
    first = tiny_tokenizer.decode(ds[0]["raw_prompt_ids"])
    assert "user\n<|vision_start|><|image_pad|><|vision_end|>What colour?" in first
    second = ds[1]
    assert _image_tokens(tiny_tokenizer, second["input_ids"]) == 16 + 4
    assert tiny_tokenizer.decode(second["raw_prompt_ids"]).count("<|vision_start|>") == 2


BAD_ROWS = [
    ("no image for placeholder", {"problem": "<image>What?", "answer": "1", "images": []}, "missing_image",
     "column 'images': the prompt has 1 <image> but no image"),
    ("more placeholders", {"problem": "<image><image>What?", "answer": "1", "images": _img(_png())},
     "placeholder_mismatch", "column 'images': the prompt has 2 <image> placeholders but only 1 images"),
    ("corrupt image", {"problem": "<image>What?", "answer": "1", "images": _img(_png()[:60])}, "unreadable_image",
     "column 'images': image 0 cannot be read"),
    ("zero-byte image", {"problem": "<image>What?", "answer": "1", "images": _img(b"")}, "unreadable_image",
     "column 'images': image 0 cannot be read"),
    ("empty answer", {"problem": "<image>What?", "answer": "", "images": _img(_png())}, "missing_answer",
     "column 'answer': answer is empty"),
    ("empty prompt", {"problem": "", "answer": "1", "images": _img(_png())}, "missing_prompt",
     "column 'problem'"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "bad", "kind", "message"), BAD_ROWS, ids=[b[0] for b in BAD_ROWS])
def test_bad_row_raises_naming_file_row_and_column_or_is_skipped(
    tmp_path, tiny_tokenizer, tiny_processor, name, bad, kind, message
) -> None:
    good = {"problem": "<image>How many?", "answer": "2", "images": _img(_png())}
    path = _write(tmp_path / "bad.parquet", [good, good, bad, good])
    with pytest.raises(DatasetError, match=rf"bad\.parquet: row 2, {message}"):
        _dataset(path, tiny_tokenizer, tiny_processor)
    ds = _dataset(path, tiny_tokenizer, tiny_processor, skip_bad_rows=True)
    assert len(ds) == 3
    assert dict(ds.skipped) == {kind: 1}
    assert [ds[i]["dataset_index"] for i in range(3)] == [0, 1, 3], "dataset_index stays the row's file index"


def test_missing_column_names_the_key(tmp_path, tiny_tokenizer, tiny_processor) -> None:
    path = _write(tmp_path / "d.parquet", [{"problem": "<image>What?", "answer": "1", "images": _img(_png())}])
    with pytest.raises(DatasetError, match=r"column 'question' \(data.prompt_key\) not found"):
        _dataset(path, tiny_tokenizer, tiny_processor, prompt_key="question")


def test_overlong_prompts_are_filtered_with_a_count_or_rejected(tmp_path, tiny_tokenizer, tiny_processor) -> None:
    rows = [
        {"problem": "<image>Short?", "answer": "1", "images": _img(_png())},
        {"problem": "<image>" + "very long question " * 60, "answer": "1", "images": _img(_png())},
    ]
    path = _write(tmp_path / "d.parquet", rows)
    ds = _dataset(path, tiny_tokenizer, tiny_processor, max_prompt_length=64)
    assert len(ds) == 1 and ds.skipped["overlong_prompt"] == 1
    with pytest.raises(DatasetError, match=r"row 1: prompt is \d+ tokens, longer than data.max_prompt_length=64"):
        _dataset(path, tiny_tokenizer, tiny_processor, max_prompt_length=64, filter_overlong_prompts=False)


def test_jsonl_with_image_paths_and_image_dir(tmp_path, tiny_tokenizer, tiny_processor) -> None:
    (tmp_path / "imgs").mkdir()
    (tmp_path / "imgs" / "a.png").write_bytes(_png())
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps({"problem": "<image>What?", "answer": "1", "images": ["a.png"]}) + "\n")
    ds = _dataset(str(path), tiny_tokenizer, tiny_processor, image_dir=str(tmp_path / "imgs"))
    assert _image_tokens(tiny_tokenizer, ds[0]["input_ids"]) == 16
    with pytest.raises(DatasetError, match="row 0, column 'images': image 0 cannot be read"):
        _dataset(str(path), tiny_tokenizer, tiny_processor, image_dir=str(tmp_path / "nowhere"))


def test_folder_with_split_and_save_to_disk(tiny_dir, tmp_path, tiny_tokenizer, tiny_processor) -> None:
    assert len(load_rows(f"{tiny_dir / 'data'}@val")) == 24
    import datasets

    datasets.Dataset.from_list([{"problem": "<image>Hi?", "answer": "x", "images": _img(_png())}]).save_to_disk(
        str(tmp_path / "saved")
    )
    assert len(_dataset(str(tmp_path / "saved"), tiny_tokenizer, tiny_processor)) == 1


def test_hub_ids_go_to_load_dataset_and_unknown_paths_fail(monkeypatch) -> None:
    import datasets

    calls = []

    def fake_load_dataset(name, split=None, **kwargs):
        calls.append((name, split))
        return datasets.Dataset.from_list([{"problem": "q", "answer": "a"}])

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    assert len(load_rows("LMMs-Lab-Turtle/Vision-SR1-47K@train")) == 1
    assert calls == [("LMMs-Lab-Turtle/Vision-SR1-47K", "train")]
    with pytest.raises(DatasetError, match="no such file or folder"):
        load_rows("./not/here.parquet")


def test_text_only_model_gets_1d_positions(tmp_path, tiny_dir) -> None:
    from verl.utils.tokenizer import get_processor, get_tokenizer

    tokenizer = get_tokenizer(str(tiny_dir / "qwen2_text"))
    assert get_processor(str(tiny_dir / "qwen2_text")) is None
    path = _write(tmp_path / "t.parquet", [{"problem": "What is 2+2?", "answer": "4"}])
    item = RLHFDataset(path, tokenizer, None, max_prompt_length=64)[0]
    assert item["position_ids"].shape == (64,) and item["multi_modal_data"] is None
    image_path = _write(tmp_path / "i.parquet", [{"problem": "<image>?", "answer": "4", "images": _img(_png())}])
    with pytest.raises(DatasetError, match="no image processor"):
        RLHFDataset(image_path, tokenizer, None, max_prompt_length=64)


def test_strip_image_placeholders() -> None:
    assert strip_image_placeholders("<image>How many <image> dots?") == "How many dots?"


def test_resumable_loader_continues_with_the_same_batches(tiny_dir, tiny_tokenizer, tiny_processor) -> None:
    ds = _dataset(str(tiny_dir / "data" / "val.parquet"), tiny_tokenizer, tiny_processor)

    def indices(batches):
        return [list(b["dataset_index"]) for b in batches]

    full = ResumableDataLoader(ds, batch_size=5, seed=7)
    reference = indices(list(full)) + indices(list(full))  # two epochs, 4 batches each (24 // 5)
    assert len(reference) == 8 and reference[:4] != reference[4:], "each epoch has its own order"

    first = ResumableDataLoader(ds, batch_size=5, seed=7)
    it = iter(first)
    seen = indices([next(it) for _ in range(3)])
    state = first.state_dict()
    resumed = ResumableDataLoader(ds, batch_size=5, seed=7)
    resumed.load_state_dict(state)
    rest = indices(list(resumed)) + indices(list(resumed))
    assert seen + rest == reference
    batch = DataProto.from_single_dict(next(iter(ResumableDataLoader(ds, batch_size=4))))
    assert len(batch) == 4 and batch.non_tensor_batch["ground_truth"].shape == (4,)


# ---------------------------------------------------------------------------------------------- videos


def _mp4(path: Path, frames: int = 16, fps: int = 8) -> Path:
    """A video file of a dot moving right (PyAV, which qwen-vl-utils installs)."""
    import av
    import numpy as np

    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        for i in range(frames):
            array = np.full((64, 64, 3), 255, np.uint8)
            array[28:36, 3 * i : 3 * i + 8] = (200, 0, 0)
            for packet in stream.encode(av.VideoFrame.from_ndarray(array, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def _video_jsonl(path: Path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def _video_dataset(path: str, tokenizer, processor, **kwargs) -> RLHFDataset:
    return _dataset(path, tokenizer, processor, min_pixels=3136, max_pixels=12544, **kwargs)


def test_mixed_image_video_and_text_rows(tiny_dir, any_tiny_processor) -> None:
    processor, tokenizer = any_tiny_processor, any_tiny_processor.tokenizer
    ds = _dataset(str(tiny_dir / "data" / "mixed.parquet"), tokenizer, processor, min_pixels=3136, max_pixels=12544)
    video_id = tokenizer.convert_tokens_to_ids("<|video_pad|>")
    kinds = set()
    for i in range(6):
        item = ds[i]
        kind = item["data_source"].split("_")[1]
        kinds.add(kind)
        assert int(item["attention_mask"].sum()) == ds.prompt_length(ds.rows[i])
        assert item["position_ids"].shape == (3, 256)
        if kind == "video":
            grid = item["multi_modal_inputs"]["video_grid_thw"]
            assert grid[0, 0] == 2, "4 frames: 2 temporal patches"
            assert int((item["input_ids"] == video_id).sum()) == int(grid.prod()) // 4
            frames, metadata = item["multi_modal_data"]["videos"][0]
            factor = 2 * processor.image_processor.patch_size  # resized to whole merged patches
            assert frames.shape[0] == 4 and frames.shape[1] % factor == 0 and str(frames.dtype) == "uint8"
            assert "<|video_pad|>" in tokenizer.decode(item["raw_prompt_ids"])
        elif kind == "text":
            assert item["multi_modal_inputs"] is None and item["multi_modal_data"] is None
        else:
            assert "image_grid_thw" in item["multi_modal_inputs"]
    assert len(kinds) == 4, "rows 0-5: two image kinds, video, text"


@pytest.mark.parametrize(("video_fps", "frames"), [(2.0, 4), (4.0, 8)])
def test_video_file_is_sampled_at_video_fps(tmp_path, tiny_tokenizer, tiny_processor, video_fps, frames) -> None:
    _mp4(tmp_path / "dot.mp4")  # 16 frames at 8 fps: 2 seconds
    path = _video_jsonl(tmp_path / "v.jsonl", [{"problem": "<video>Which way?", "answer": "right",
                                                 "videos": ["dot.mp4"]}])  # fmt: skip
    ds = _video_dataset(path, tiny_tokenizer, tiny_processor, image_dir=str(tmp_path), video_fps=video_fps)
    item = ds[0]
    assert item["multi_modal_inputs"]["video_grid_thw"][0, 0] == frames // 2  # temporal patches of 2 frames
    assert item["multi_modal_data"]["videos"][0][0].shape[0] == frames


BAD_VIDEOS = [
    ("missing_file", ["nowhere.mp4"], "unreadable_video", r"video file '.*nowhere\.mp4' not found"),
    ("corrupt_file", ["corrupt.mp4"], "unreadable_video", r"video file '.*corrupt\.mp4' cannot be decoded"),
    ("no_frames", [[]], "unreadable_video", "the frame list is empty"),
    ("bad_frame", [["not_there.png"]], "unreadable_video", "video 0 cannot be read"),
    ("no_video", [], "missing_video", r"1 <video> placeholders but only 0 videos"),
]


@pytest.mark.parametrize(("name", "videos", "kind", "message"), BAD_VIDEOS, ids=[b[0] for b in BAD_VIDEOS])
def test_bad_video_names_file_row_and_column_or_is_skipped(
    tmp_path, tiny_tokenizer, tiny_processor, name, videos, kind, message
) -> None:
    _mp4(tmp_path / "dot.mp4")
    (tmp_path / "corrupt.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"garbage" * 50)
    good = {"problem": "<video>Which way?", "answer": "right", "videos": ["dot.mp4"]}
    bad = {"problem": "<video>Which way?", "answer": "right", "videos": videos}
    path = _video_jsonl(tmp_path / "bad.jsonl", [good, bad, good])
    with pytest.raises(DatasetError, match=rf"bad\.jsonl: row 1, column 'videos': .*{message}"):
        _video_dataset(path, tiny_tokenizer, tiny_processor, image_dir=str(tmp_path))
    ds = _video_dataset(path, tiny_tokenizer, tiny_processor, image_dir=str(tmp_path), skip_bad_rows=True)
    assert len(ds) == 2 and dict(ds.skipped) == {kind: 1}


def test_too_many_frames_for_max_prompt_length_are_rejected_or_skipped(tmp_path, tiny_tokenizer, tiny_processor):
    _mp4(tmp_path / "long.mp4", frames=64, fps=8)  # 8 seconds at 4 fps: 32 frames, 16 patches of 4 tokens
    rows = [{"problem": "Short?", "answer": "1", "videos": []},
            {"problem": "<video>Which way?", "answer": "right", "videos": ["long.mp4"]}]  # fmt: skip
    path = _video_jsonl(tmp_path / "long.jsonl", rows)
    kwargs = dict(image_dir=str(tmp_path), video_fps=4.0, max_prompt_length=64)
    with pytest.raises(DatasetError, match=r"long\.jsonl: row 1: prompt is \d+ tokens, longer than"):
        _video_dataset(path, tiny_tokenizer, tiny_processor, filter_overlong_prompts=False, **kwargs)
    ds = _video_dataset(path, tiny_tokenizer, tiny_processor, **kwargs)
    assert len(ds) == 1 and ds.skipped["overlong_prompt"] == 1


def test_qwen2_5_vl_video_frames_are_spaced_by_the_models_tokens_per_second(tiny_dir, tiny_tokenizer, tiny_processor):
    """2 temporal patches sampled at 2 fps are 1 s apart; the tiny config's tokens_per_second is 4 (released
    checkpoints: 2), so the second patch's temporal positions are 4 after the first's."""
    ds = _dataset(str(tiny_dir / "data" / "mixed.parquet"), tiny_tokenizer, tiny_processor, min_pixels=3136,
                  max_pixels=12544)  # fmt: skip
    assert ds.tokens_per_second == 4.0
    item = ds[1]
    assert item["multi_modal_inputs"]["second_per_grid_ts"].tolist() == [1.0]
    video = item["input_ids"] == tiny_tokenizer.convert_tokens_to_ids("<|video_pad|>")
    temporal = item["position_ids"][0][video].unique().tolist()
    assert len(temporal) == 2 and temporal[1] - temporal[0] == 4
