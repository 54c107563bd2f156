"""The peer side of the step-time benchmark: TRL's ``GRPOTrainer`` on the same model, prompts and settings.

Run in its own process (``python -m bench.trl_grpo --spec spec.json --out result.json``) with TRL on
``sys.path`` (``make bench`` installs it into ``.bench-deps``, never into the project's environment). The spec
is written by :mod:`bench.peer`; it names the model, the rows in the order our loader serves them, and the
shared settings. Every optimizer step is one generation batch (``steps_per_generation=1``): B prompts × n
completions, rewarded, ref log-probs, one update, exactly the shape of one of our steps.

Phase timings come from wrapping the trainer's own methods on the instance: ``_generate`` (rollout),
``_calculate_rewards`` (reward), ``_generate_and_score_completions`` (rollout + reward + log-probs +
advantages) and ``training_step`` (all of it plus the update).
"""

from __future__ import annotations

import argparse
import functools
import json
import time
from typing import Any

import torch


def _timed(obj: Any, name: str, sink: dict[str, list[float]]) -> None:
    method = getattr(obj, name)

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return method(*args, **kwargs)
        finally:
            sink.setdefault(name, []).append(time.perf_counter() - start)

    setattr(obj, name, wrapper)


def _dataset(spec: dict[str, Any]) -> Any:
    """Rows as conversational prompts with their image, in the order the spec gives (no reshuffling)."""
    import datasets

    from verl.utils.dataset import build_messages, load_format_prompt, load_image, load_rows, resize_to_pixel_bounds

    rows = load_rows(spec["train_file"])
    template = load_format_prompt(spec["format_prompt"])
    records = []
    for index in spec["row_order"]:
        row = rows[int(index)]
        images = [
            resize_to_pixel_bounds(load_image(item), spec["min_pixels"], spec["max_pixels"]) for item in row["images"]
        ]
        text = template.render(content=row["problem"]) if template is not None else row["problem"]
        records.append({"prompt": build_messages(text, len(images)), "image": images[0], "answer": row["answer"]})
    return datasets.Dataset.from_list(records)


def _reward(spec: dict[str, Any]) -> Any:
    """Our reward function (accuracy + format, no self-reward) in TRL's signature."""
    from verl.workers.reward.reward_manager import load_reward_function

    fn = load_reward_function(spec["reward_function"])

    def reward(completions: list[Any], answer: list[str], **kwargs: Any) -> list[float]:
        texts = [c[-1]["content"] if isinstance(c, list) else c for c in completions]
        inputs = [{"response": t, "ground_truth": a, "response_length": 0} for t, a in zip(texts, answer)]
        return [score["overall"] for score in fn(inputs, **spec.get("reward_kwargs", {}))]

    reward.__name__ = "accuracy_format"
    return reward


def run(spec: dict[str, Any]) -> dict[str, Any]:
    from transformers import AutoModelForImageTextToText, AutoProcessor
    from trl import GRPOConfig, GRPOTrainer

    torch.manual_seed(spec["seed"])
    processor = AutoProcessor.from_pretrained(spec["model_path"])
    processor.image_processor.min_pixels = spec["min_pixels"]
    processor.image_processor.max_pixels = spec["max_pixels"]
    model = AutoModelForImageTextToText.from_pretrained(spec["model_path"], dtype=torch.float32)
    completions = spec["prompts_per_step"] * spec["n"]
    args = GRPOConfig(
        output_dir=spec["output_dir"],
        use_cpu=True,
        bf16=False,
        max_steps=spec["steps"],
        per_device_train_batch_size=completions,
        gradient_accumulation_steps=1,
        steps_per_generation=1,
        num_generations=spec["n"],
        max_completion_length=spec["max_response_length"],
        temperature=spec["temperature"],
        top_p=spec["top_p"],
        learning_rate=spec["lr"],
        weight_decay=spec["weight_decay"],
        lr_scheduler_type="constant",
        warmup_steps=0,
        max_grad_norm=spec["max_grad_norm"],
        beta=spec["kl_coef"],
        num_iterations=1,
        shuffle_dataset=False,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        seed=spec["seed"],
        dataloader_num_workers=0,
        disable_tqdm=True,
    )
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=[_reward(spec)],
        args=args,
        train_dataset=_dataset(spec),
        processing_class=processor,
    )
    phases: dict[str, list[float]] = {}
    for name in ("_generate", "_calculate_rewards", "_generate_and_score_completions", "training_step"):
        _timed(trainer, name, phases)
    trainer.train()
    steps = []
    for i, total in enumerate(phases["training_step"]):
        prepare = phases["_generate_and_score_completions"][i]
        gen, reward = phases["_generate"][i], phases["_calculate_rewards"][i]
        steps.append(
            {
                "step": total,
                "gen": gen,
                "reward": reward,
                "log_probs_and_adv": prepare - gen - reward,
                "update": total - prepare,
            }
        )
    logged = [entry for entry in trainer.state.log_history if "reward" in entry]
    return {
        "steps": steps,
        "rewards": [entry["reward"] for entry in logged],
        "completion_length": [entry.get("completions/mean_length") for entry in logged],
        "trl_version": __import__("trl").__version__,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spec", required=True, help="JSON file written by bench.peer")
    parser.add_argument("--out", required=True, help="where to write the per-step timings (JSON)")
    args = parser.parse_args()
    with open(args.spec, encoding="utf-8") as f:
        spec = json.load(f)
    result = run(spec)
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
