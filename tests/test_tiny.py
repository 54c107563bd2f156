"""The embedded default loads like a hub checkpoint in transformers and vLLM, and is deterministic."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image

from verl.tiny import QUESTION_KINDS, TinySizes, generate


def _digest(folder: Path) -> dict[str, str]:
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.name != "MANIFEST.json")
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def test_generation_is_deterministic_per_seed(tmp_path: Path) -> None:
    sizes = TinySizes(train=14, val=7, test=7)
    a = _digest(generate(tmp_path / "a", seed=3, sizes=sizes))
    b = _digest(generate(tmp_path / "b", seed=3, sizes=sizes))
    c = _digest(generate(tmp_path / "c", seed=4, sizes=sizes))
    assert a == b
    assert a["data/train.parquet"] != c["data/train.parquet"]
    assert a["qwen2_5_vl/model.safetensors"] != c["qwen2_5_vl/model.safetensors"]
    assert a["qwen3_vl/model.safetensors"] != c["qwen3_vl/model.safetensors"]


def test_generate_skips_complete_folder_and_regenerates_on_force(tmp_path: Path) -> None:
    sizes = TinySizes(train=7, val=7, test=7)
    out = generate(tmp_path / "t", seed=0, sizes=sizes)
    marker = out / "data" / "marker"
    marker.write_text("x")
    generate(out, seed=0, sizes=sizes)
    assert marker.exists(), "a complete folder with the same seed and sizes must be kept"
    generate(out, seed=0, sizes=sizes, force=True)
    assert not marker.exists()


def test_dataset_schema_and_kinds(tiny_dir: Path) -> None:
    rows = pq.read_table(tiny_dir / "data" / "train.parquet").to_pylist()
    assert set(rows[0]) == {"problem", "answer", "images", "data_source", "description"}
    assert {r["data_source"] for r in rows} == {f"synthetic_{k}" for k in QUESTION_KINDS}
    for r in rows:
        assert r["problem"].startswith("<image>")
        assert 0 < len(r["answer"]) <= 8
        assert len(r["images"]) == 1
        Image.open(io.BytesIO(r["images"][0]["bytes"])).verify()
    manifest = json.loads((tiny_dir / "MANIFEST.json").read_text())
    assert manifest["sizes"]["train"] == len(rows)


def test_transformers_loads_vl_model_and_runs_image_forward(any_tiny_vl: Path, any_tiny_processor) -> None:
    from transformers import AutoModelForImageTextToText

    tiny_processor = any_tiny_processor
    model = AutoModelForImageTextToText.from_pretrained(any_tiny_vl)
    tokenizer = tiny_processor.tokenizer
    for token in ("<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>"):
        assert token in tokenizer.get_vocab(), token
    assert model.config.text_config.head_dim == 64
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "How many circles?"}]}]
    text = tiny_processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert text.endswith("<|im_start|>assistant\n")
    image = Image.new("RGB", (112, 112), (200, 10, 10))
    inputs = tiny_processor(text=[text], images=[image], return_tensors="pt")
    # Qwen2.5-VL: (112/14)^2 / 2^2; Qwen3-VL resizes to a multiple of 32 px: (128/16)^2 / 2^2
    assert int((inputs["input_ids"] == model.config.image_token_id).sum()) == 16
    with torch.no_grad():
        logits = model(**inputs).logits
    assert logits.shape[:2] == inputs["input_ids"].shape
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize("folder", ["qwen2_text", "qwen3_text"])
def test_transformers_loads_text_model(tiny_dir: Path, folder: str) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_dir / folder)
    model = AutoModelForCausalLM.from_pretrained(tiny_dir / folder)
    assert model.config.model_type == folder.split("_")[0]
    ids = tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], add_generation_prompt=True,
                                        return_tensors="pt", return_dict=True)["input_ids"]  # fmt: skip
    out = model.generate(ids, max_new_tokens=4, do_sample=False)
    assert out.shape[1] > ids.shape[1]


VLLM_SCRIPT = textwrap.dedent(
    """
    import io, json, os, sys
    import pyarrow.parquet as pq
    from PIL import Image
    from vllm import LLM, SamplingParams

    folder = sys.argv[1]
    llm = LLM(model=os.path.join(folder, "qwen2_5_vl"), dtype="bfloat16", enforce_eager=True, max_model_len=512,
              limit_mm_per_prompt={"image": 1}, seed=0)
    tokenizer = llm.get_tokenizer()
    rows = pq.read_table(os.path.join(folder, "data", "val.parquet")).slice(0, 4).to_pylist()
    prompts = []
    for r in rows:
        messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": r["problem"][7:]}]}]
        text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        image = Image.open(io.BytesIO(r["images"][0]["bytes"])).convert("RGB")
        prompts.append({"prompt": text, "multi_modal_data": {"image": image}})
    outs = llm.generate(prompts, SamplingParams(n=4, max_tokens=16, temperature=1.0, seed=0), use_tqdm=False)
    print("RESULT", json.dumps([[len(c.token_ids) for c in o.outputs] for o in outs]))
    """
)


@pytest.mark.slow
def test_vllm_cpu_generates_with_images_and_n(tiny_dir: Path) -> None:
    pytest.importorskip("vllm")
    env = dict(os.environ, VLLM_ENABLE_V1_MULTIPROCESSING="0", VLLM_CPU_KVCACHE_SPACE="1")
    proc = subprocess.run([sys.executable, "-c", VLLM_SCRIPT, str(tiny_dir)], env=env, capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(line for line in proc.stdout.splitlines() if line.startswith("RESULT "))
    lengths = json.loads(line[len("RESULT ") :])
    assert len(lengths) == 4 and all(len(per_prompt) == 4 for per_prompt in lengths)
    assert all(0 < n <= 16 for per_prompt in lengths for n in per_prompt)


def test_warm_start_lowers_the_loss_and_writes_a_loadable_model(tmp_path, monkeypatch) -> None:
    from transformers import AutoModelForImageTextToText, AutoProcessor
    from transformers.models.qwen2_5_vl import modeling_qwen2_5_vl

    from verl.tiny import warm_start

    # Image tokens train at their M-RoPE positions, as the rollout and the actor place them (not text positions).
    rope_index = modeling_qwen2_5_vl.Qwen2_5_VLModel.get_rope_index
    calls = []
    monkeypatch.setattr(
        modeling_qwen2_5_vl.Qwen2_5_VLModel,
        "get_rope_index",
        lambda self, *args, **kwargs: calls.append(1) or rope_index(self, *args, **kwargs),
    )
    out = generate(tmp_path / "w", seed=0, sizes=TinySizes(train=32, val=7, test=7))
    folder = warm_start(out, steps=15, batch_size=8, lr=3e-3)
    assert len(calls) == 15
    report = json.loads((folder / "WARM_START.json").read_text())
    assert report["final_loss"] < report["first_loss"]
    AutoModelForImageTextToText.from_pretrained(folder)
    assert AutoProcessor.from_pretrained(folder).tokenizer.chat_template
    assert warm_start(out, steps=15) == folder and len(calls) == 15, "a finished warm start is reused"
