"""The single-controller GRPO/PPO loop.

One step, one call per arrow (each body lives in its own module)::

    prompts → rollout (n per prompt) → self-reward hop → reward → old log-probs → ref log-probs
            → (values) → advantages → (critic update) → actor update → metrics → validation / checkpoint

The pipelined hop (the default with the policy on vLLM) runs inside the rollout (``SelfRewardHop.rollout``), and
without online filtering the reward is graded in a driver thread while the workers compute the log-probs.
"""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
import zlib
from collections import defaultdict
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import torch

from ..models.flops import mfu
from ..protocol import DataProto
from ..utils.dataset import ResumableDataLoader, RLHFDataset
from ..utils.tokenizer import get_processor, get_tokenizer
from ..workers.reward.reward_manager import RewardManager
from . import TrainingAborted, core_algos
from .balance import balanced_order
from .config import PPOConfig
from .loop import TrainingLoop, timer
from .metrics import compute_data_metrics, reduce_metrics
from .self_reward import HopResult, SelfRewardHop, decode_responses

logger = logging.getLogger(__name__)


Reward = tuple[torch.Tensor, dict[str, list[float]], float]
"""token-level scores, components per row, seconds the grading took"""


@dataclass
class StepBatch:
    """One step's rollout after the hop and the reward: the rows, the reward components per row, and the hop's
    result (None without a hop, or after online filtering, which does not keep it). ``pending``: the reward
    still being graded (scores and components then come from it, in the batch's row order at submission)."""

    batch: DataProto
    components: dict[str, list[float]]
    hop: HopResult | None = None
    pending: Future[Reward] | None = None


class RayPPOTrainer(TrainingLoop):
    """Drives the worker groups; holds the data loaders and reward managers. The loop itself (resume, when to
    validate and save, tracking, progress, failures) is :class:`~.loop.TrainingLoop`'s."""

    def __init__(self, config: PPOConfig) -> None:
        super().__init__(config)
        model_cfg = config.worker.actor.model
        self.tokenizer = get_tokenizer(
            model_cfg.tokenizer_path or model_cfg.model_path, trust_remote_code=model_cfg.trust_remote_code
        )
        self.processor = get_processor(
            model_cfg.tokenizer_path or model_cfg.model_path, trust_remote_code=model_cfg.trust_remote_code
        )
        from transformers import AutoConfig

        self.hf_config = AutoConfig.from_pretrained(model_cfg.model_path, trust_remote_code=model_cfg.trust_remote_code)
        self.reward_fn = RewardManager(config.worker.reward, self.tokenizer)
        self.val_reward_fn = RewardManager(config.worker.val_reward, self.tokenizer)
        self.kl_ctrl = core_algos.get_kl_controller(
            config.algorithm.kl_type, config.algorithm.kl_coef, config.algorithm.kl_target, config.algorithm.kl_horizon
        )
        self.hop_cfg = config.algorithm.self_reward
        if self.hop_cfg.train_second_hop and config.algorithm.online_filtering:
            raise ValueError(
                "algorithm.self_reward.train_second_hop and algorithm.online_filtering cannot be combined yet: "
                "filtering drops rows after the hop, and the hop's sequences are matched to rows by position"
            )
        actor = config.worker.actor
        # On-policy update (one epoch over one mini-batch) and nothing reads the old log-probs before it: the
        # update's own log-probs are the old ones, so the separate pass is skipped (see the config key).
        self.skip_old_log_probs = (
            not actor.recompute_on_policy_log_probs
            and actor.ppo_epochs == 1
            and actor.global_batch_size >= config.data.rollout_batch_size
            and not self.hop_cfg.train_second_hop
            and not (config.algorithm.use_reference_policy and not config.algorithm.use_kl_loss)
        )
        self._build_data()
        dataset = self.train_dataset or self.val_dataset
        self.hop = (
            SelfRewardHop.from_config(
                self.hop_cfg,
                self.tokenizer,
                lambda prompts: self.actor_rollout.generate_sequences(prompts),
                multimodal=self.processor is not None,
                chat_template=getattr(dataset, "chat_template", None),
            )
            if self.hop_cfg.enable
            else None
        )
        self.pipelined_hop = self._pipelined_hop()
        self._nonfinite_streak = 0
        self.actor_rollout = self.critic = None
        self._group_roles: dict[str, str] = {}

    @cached_property
    def _reward_thread(self) -> ThreadPoolExecutor:
        """Where the reward is graded while the workers compute the log-probs."""
        return ThreadPoolExecutor(max_workers=1, thread_name_prefix="reward")

    def _pipelined_hop(self) -> bool:
        """Whether the hop runs inside the rollout (``algorithm.self_reward.pipelined``): the policy backend on
        the vLLM engine; the HF engine keeps the separate hop, and says so once."""
        if self.hop is None or not self.hop_cfg.pipelined or not self.hop.can_pipeline:
            return False
        if self.config.worker.rollout.name != "vllm":
            logger.info(
                "algorithm.self_reward.pipelined: the %s rollout has no stop strings; the hop runs after the rollout",
                self.config.worker.rollout.name,
            )
            return False
        return True

    # ------------------------------------------------------------------ data

    def _dataset(self, files: str) -> RLHFDataset:
        d = self.config.data
        return RLHFDataset(
            files,
            self.tokenizer,
            self.processor,
            prompt_key=d.prompt_key,
            answer_key=d.answer_key,
            image_key=d.image_key,
            video_key=d.video_key,
            video_fps=d.video_fps,
            image_dir=d.image_dir,
            max_prompt_length=d.max_prompt_length,
            format_prompt=d.format_prompt,
            min_pixels=d.min_pixels,
            max_pixels=d.max_pixels,
            filter_overlong_prompts=d.filter_overlong_prompts,
            skip_bad_rows=d.skip_bad_rows,
            override_chat_template=d.override_chat_template,
        )

    def _build_data(self) -> None:
        d, t = self.config.data, self.config.trainer
        self.val_dataset = self._dataset(d.val_files) if d.val_files else None
        self.train_dataset = None if t.val_only else self._dataset(d.train_files)
        if self.train_dataset is not None:
            batch = d.mini_rollout_batch_size or d.rollout_batch_size
            if len(self.train_dataset) < batch:
                raise ValueError(
                    f"{d.train_files}: {len(self.train_dataset)} usable rows, fewer than one batch of {batch} "
                    "(data.rollout_batch_size, or data.mini_rollout_batch_size when set)"
                )
            self.train_loader = ResumableDataLoader(
                self.train_dataset, batch, shuffle=d.shuffle, seed=d.seed, num_workers=d.dataloader_num_workers
            )
            steps_per_epoch = len(self.train_dataset) // d.rollout_batch_size
            self.total_steps = steps_per_epoch * t.total_epochs
            if t.max_steps is not None:
                self.total_steps = min(t.max_steps, self.total_steps) if self.total_steps else t.max_steps
            self.config.worker.actor.optim.training_steps = self.total_steps
            self.config.worker.critic.optim.training_steps = self.total_steps
        else:
            self.total_steps = 0

    def _next_batch(self) -> DataProto:
        if not hasattr(self, "_train_iter"):
            self._train_iter = iter(self.train_loader)
        try:
            rows = next(self._train_iter)
        except StopIteration:
            self._train_iter = iter(self.train_loader)
            rows = next(self._train_iter)
        return DataProto.from_single_dict(rows)

    # ------------------------------------------------------------------ workers

    def _start_workers(self) -> None:
        from ..single_controller import RayResourcePool, RayWorkerGroup
        from ..workers.fsdp_workers import FSDPWorker

        t = self.config.trainer
        use_gpu = t.device == "cuda" or (t.device == "auto" and torch.cuda.is_available())
        colocate = 2 if self.config.algorithm.use_critic else 1
        self.pool = RayResourcePool([t.n_gpus_per_node] * t.nnodes, use_gpu=use_gpu, max_colocate_count=colocate)
        role = "actor_rollout_ref" if self.config.algorithm.use_reference_policy else "actor_rollout"
        self._group_roles = {"actor": role, "critic": "critic"}
        self.actor_rollout = RayWorkerGroup(self.pool, FSDPWorker, self.config.worker, role, name_prefix="actor")
        self.actor_rollout.init_model()
        if self.config.algorithm.use_critic:
            self.critic = RayWorkerGroup(self.pool, FSDPWorker, self.config.worker, "critic", name_prefix="critic")
            self.critic.init_model()
        for group in (self.actor_rollout, self.critic):
            if group is not None:
                logger.info("%s worker pids by rank: %s", self._group_roles[group.name_prefix], group.pid())

    # ------------------------------------------------------------------ the loop's hooks

    def _checkpoint_groups(self) -> dict[str, Any]:
        return {"actor": self.actor_rollout, "critic": self.critic}

    def _trainer_state(self) -> dict[str, Any]:
        # The adaptive KL controller's coefficient moves every step: a resumed run goes on from its value.
        return {"dataloader": self.train_loader.state_dict(), "kl_coef": self.kl_ctrl.kl_coef}

    def _load_trainer_state(self, state: dict[str, Any]) -> None:
        self.train_loader.load_state_dict(state["dataloader"])
        if "kl_coef" in state:
            self.kl_ctrl.kl_coef = float(state["kl_coef"])

    def _resumable(self) -> bool:
        return self.train_dataset is not None

    def _val_only(self) -> bool:
        return self.config.trainer.val_only

    def _val_before_train(self) -> bool:
        return self.config.trainer.val_before_train

    def _logs_to_trim(self) -> list[str]:
        return [self.config.trainer.response_path]

    @property
    def data_epoch(self) -> int:
        return self.train_loader.epoch

    def _role(self, group_name: str) -> str:
        return self._group_roles.get(group_name, group_name or "unknown")

    def _check_step(self, metrics: dict[str, Any]) -> None:
        self._check_finite(metrics)

    # ------------------------------------------------------------------ steps

    def _decode_responses(self, batch: DataProto) -> list[str]:
        return decode_responses(batch, self.tokenizer)

    # ------------------------------------------------------------------ advantages

    def _compute_advantage(self, batch: DataProto, components: dict[str, list[float]]) -> None:
        alg = self.config.algorithm
        b = batch.batch
        mask = b["response_mask"]
        index = batch.non_tensor_batch["uid"]
        if alg.reward_channels:
            channels = {name: torch.tensor(components[name], dtype=torch.float32) for name in alg.reward_channels}
            penalty = None
            if alg.use_reference_policy and not alg.use_kl_loss:  # KL in the reward: keep it in the advantages
                penalty = (b["token_level_rewards"] - b["token_level_scores"]).sum(-1)
            advantages, returns = core_algos.compute_multi_reward_advantage(
                channels, alg.reward_channels, mask, index, norm_adv_by_std=alg.norm_adv_by_std_in_grpo, penalty=penalty
            )
        else:
            advantages, returns = core_algos.compute_advantage(
                alg.adv_estimator,
                token_level_rewards=b["token_level_rewards"],
                response_mask=mask,
                index=index,
                values=b.get("values") if "values" in b else None,
                reward_baselines=b.get("reward_baselines", None),
                gamma=alg.gamma,
                lam=alg.lam,
                norm_adv_by_std=alg.norm_adv_by_std_in_grpo,
            )
        b["advantages"], b["returns"] = advantages, returns

    # ------------------------------------------------------------------ one step

    def _make_batch(self, metrics: dict[str, Any], timing: dict[str, float]) -> StepBatch:
        """Rollout + hop + reward for one step's prompts; with online filtering, keep only the groups whose
        training signal varies within the group (``filter_groups``) and refill up to ``max_try_make_batch``."""
        cfg, alg = self.config, self.config.algorithm
        n = cfg.worker.rollout.n
        kept: list[DataProto] = []
        hops: list[HopResult] = []
        kept_components: dict[str, list[float]] = defaultdict(list)
        kept_prompts, tries = 0, 0
        while kept_prompts < cfg.data.rollout_batch_size:
            tries += 1
            if 0 < cfg.trainer.max_try_make_batch < tries:  # -1: no limit
                raise RuntimeError(
                    f"online filtering kept {kept_prompts} of {cfg.data.rollout_batch_size} prompts after "
                    f"{cfg.trainer.max_try_make_batch} tries (trainer.max_try_make_batch): too few groups whose "
                    f"{self._filter_signal()} varies; turn algorithm.online_filtering off or sample more "
                    "(worker.rollout.n)"
                )
            batch = self._next_batch()
            batch.non_tensor_batch["uid"] = np.array([str(uuid.uuid4()) for _ in range(len(batch))], dtype=object)
            gen = batch.select(
                batch_keys=["input_ids", "attention_mask", "position_ids"],
                non_tensor_batch_keys=[
                    k for k in ("raw_prompt_ids", "multi_modal_data") if k in batch.non_tensor_batch
                ],
            )
            with self.timer("gen", timing, phase="rollout"):
                out, hop = self._rollout(gen, batch)
            if hop is not None:  # the pipelined hop's own driver work, inside "gen"
                timing["gen/self_reward_hop"] = timing.get("gen/self_reward_hop", 0.0) + hop.seconds
            # Inside "gen" (rank 0's): the engine's own generate call and the weight sync before it.
            for key in ("generate", "weight_sync"):
                value = out.meta_info.get(f"timing/{key}")
                if value is not None:
                    timing[f"gen/{key}"] = timing.get(f"gen/{key}", 0.0) + float(value)
            batch = batch.repeat(n, interleave=True)
            for key in ("input_ids", "attention_mask", "position_ids"):
                batch.batch.pop(key)
            batch = batch.union(out.select(batch_keys=list(out.batch.keys()), non_tensor_batch_keys=[]))
            if alg.adv_estimator == "remax":
                self._remax_baseline(gen, batch)

            if hop is not None:
                batch.non_tensor_batch["blind_answer"] = hop.column()
                hops.append(hop)
            elif self.hop is not None:
                with self.timer("self_reward_hop", timing):
                    hops.append(self.hop.annotate(batch))
            if hops:
                hop_metrics = hops[-1].metrics()
                metrics.update({k: v for k, v in hop_metrics.items() if not k.startswith("timing/")})
                timing.update({k[len("timing/") :]: v for k, v in hop_metrics.items() if k.startswith("timing/split/")})

            if not alg.online_filtering:  # graded while the workers compute the log-probs (see train_step)
                pending = self._reward_thread.submit(self._grade, _reward_view(batch))
                return StepBatch(batch, {}, hops[0] if hops else None, pending)
            with self.timer("reward", timing):
                scores, components = self.reward_fn.compute_reward(batch)
            batch.batch["token_level_scores"] = scores
            if alg.online_filtering:
                keep_groups = self._filter_groups(components, n)
                rows = (keep_groups[:, None] * n + np.arange(n)[None]).reshape(-1)
                metrics["online_filtering/kept_ratio"] = len(keep_groups) / max(len(batch) // n, 1)
                batch = batch[rows.tolist()]
                components = {k: [v[i] for i in rows] for k, v in components.items()}
            kept.append(batch)
            for key, value in components.items():
                kept_components[key].extend(value)
            kept_prompts += len(batch) // n
            if not alg.online_filtering:
                break
        batch = DataProto.concat(kept) if len(kept) > 1 else kept[0]
        limit = cfg.data.rollout_batch_size * n
        if len(batch) > limit:
            batch = batch[:limit]
            kept_components = {k: v[:limit] for k, v in kept_components.items()}
        return StepBatch(batch, dict(kept_components), hops[0] if len(hops) == 1 and len(kept) == 1 else None)

    def _rollout(self, gen: DataProto, batch: DataProto) -> tuple[DataProto, HopResult | None]:
        """The rollout of ``gen`` (``batch``: its prompts' rows), with the hop inside it when pipelined."""
        if self.hop is None or not self.pipelined_hop:
            return self.actor_rollout.generate_sequences(gen), None
        return self.hop.rollout(
            gen,
            [str(q) for q in batch.non_tensor_batch["raw_question"]],
            list(batch.non_tensor_batch["ground_truth"]),
            self.actor_rollout.generate_sequences,
            self.actor_rollout.continue_sequences,
        )

    def _grade(self, batch: DataProto) -> Reward:
        start = time.perf_counter()
        scores, components = self.reward_fn.compute_reward(batch)
        return scores, components, time.perf_counter() - start

    def _filter_signal(self) -> str:
        alg = self.config.algorithm
        return f"reward channels {sorted(alg.reward_channels)}" if alg.reward_channels else f"'{alg.filter_key}'"

    def _filter_groups(self, components: dict[str, list[float]], n: int) -> np.ndarray:
        """Indices of the groups to keep: those where the signal the advantages are computed from varies (every
        weighted channel of ``algorithm.reward_channels``, else ``algorithm.filter_key``), whatever its range: a
        group where it is constant has zero advantage and teaches nothing. ``filter_low``/``filter_high``, when
        set, also bound the group's mean ``filter_key``."""
        alg = self.config.algorithm
        names = [k for k, w in alg.reward_channels.items() if w != 0] or [alg.filter_key]
        varies = np.zeros(len(components[names[0]]) // n, dtype=bool)
        for name in names:
            values = np.asarray(components[name], dtype=np.float64).reshape(-1, n)
            varies |= values.max(axis=1) - values.min(axis=1) > 1e-9
        mean = np.asarray(components[alg.filter_key], dtype=np.float64).reshape(-1, n).mean(axis=1)
        if alg.filter_low is not None:
            varies &= mean > alg.filter_low
        if alg.filter_high is not None:
            varies &= mean < alg.filter_high
        return np.nonzero(varies)[0]

    def _balance(self, batch: DataProto) -> list[int] | None:
        """Reorder rows so each data-parallel rank gets about the same number of tokens (advantages are
        computed per ``uid`` group, so the order does not change them); the order applied, None if unchanged."""
        world = self.config.trainer.world_size
        order = balanced_order(batch.batch["attention_mask"].sum(-1).tolist(), world)
        if order == list(range(len(batch))):
            return None
        batch.reorder(torch.tensor(order))
        return order

    def _remax_baseline(self, gen: DataProto, batch: DataProto) -> None:
        greedy = DataProto.from_dict(tensors=dict(gen.batch.items()), non_tensors=dict(gen.non_tensor_batch))
        greedy.meta_info.update(do_sample=False, n=1)
        out = self.actor_rollout.generate_sequences(greedy)
        base = DataProto.from_dict(
            tensors={"responses": out.batch["responses"], "response_mask": out.batch["response_mask"]},
            non_tensors={
                k: batch.non_tensor_batch[k][:: self.config.worker.rollout.n] for k in ("ground_truth", "raw_question")
            },
        )
        scores, _ = self.reward_fn.compute_reward(base)
        baseline = scores.sum(-1).repeat_interleave(self.config.worker.rollout.n)
        batch.batch["reward_baselines"] = baseline

    def train_step(self) -> dict[str, Any]:
        cfg, alg = self.config, self.config.algorithm
        metrics: dict[str, Any] = {}
        timing: dict[str, float] = {}
        step_start = time.perf_counter()
        made = self._make_batch(metrics, timing)
        batch, components = made.batch, made.components
        batch.meta_info["temperature"] = cfg.worker.rollout.temperature
        second_hop = made.hop if self.hop_cfg.train_second_hop else None
        order = None
        if second_hop is None:  # the second hop's rows point at the batch's rows by position
            order = self._balance(batch)
            if order is not None and made.pending is None:
                components = {k: [v[i] for i in order] for k, v in components.items()}

        self._enter("log_probs")
        if not self.skip_old_log_probs:
            with self.timer("old", timing, phase="log_probs"):
                batch = batch.union(self.actor_rollout.compute_log_probs(batch))
        if alg.use_reference_policy:
            with self.timer("ref", timing, phase="log_probs"):
                batch = batch.union(self.actor_rollout.compute_ref_log_probs(batch))
        if self.critic is not None:
            with self.timer("values", timing, phase="log_probs"):
                batch = batch.union(self.critic.compute_values(batch))
        if made.pending is not None:
            with timer("reward_wait", timing):
                scores, components, timing["reward"] = made.pending.result()
            if order is not None:
                scores = scores[torch.tensor(order)]
                components = {k: [v[i] for i in order] for k, v in components.items()}
            batch.batch["token_level_scores"] = scores

        adv_start = time.perf_counter()
        if alg.use_reference_policy and not alg.use_kl_loss:
            rewards, kl_metrics = core_algos.apply_kl_penalty(
                batch.batch["token_level_scores"],
                batch.batch["old_log_probs"],
                batch.batch["ref_log_probs"],
                batch.batch["response_mask"],
                self.kl_ctrl,
                alg.kl_penalty,
            )
            batch.batch["token_level_rewards"] = rewards
            metrics.update({f"actor/reward_{k}": v for k, v in kl_metrics.items()})
        else:
            batch.batch["token_level_rewards"] = batch.batch["token_level_scores"]
        self._compute_advantage(batch, components)
        timing["adv"] = time.perf_counter() - adv_start

        if self.critic is not None:
            with self.timer("update_critic", timing):
                critic_out = self.critic.update_critic(batch)
            metrics.update(reduce_metrics(critic_out.meta_info["metrics"]))

        update_batch = batch
        if self.critic is None or self.global_step >= cfg.trainer.critic_warmup:
            if second_hop is not None and self.hop is not None:
                with self.timer("second_hop_log_probs", timing, phase="log_probs"):
                    update_batch = self.hop.update_batch(
                        batch, second_hop, self.actor_rollout, **self._hop_update_args()
                    )
                metrics["self_reward/second_hop_trained_rows"] = update_batch.meta_info.get("second_hop_rows", 0)
            with self.timer("update_actor", timing):
                actor_out = self.actor_rollout.update_actor(update_batch)
            metrics.update(reduce_metrics(actor_out.meta_info["metrics"]))

        metrics.update(compute_data_metrics(batch, components))
        # Which rows this step trained on, in order: lets a resumed run be checked against an uninterrupted one.
        order = [int(i) for i in batch.non_tensor_batch["dataset_index"][:: cfg.worker.rollout.n]]
        metrics["data/first_dataset_index"] = order[0]
        metrics["data/dataset_index_digest"] = zlib.crc32(json.dumps(order).encode())
        timing["step"] = time.perf_counter() - step_start
        metrics.update({f"timing/{k}": v for k, v in timing.items()})
        seq_lens = batch.batch["attention_mask"].sum(-1).tolist()
        metrics["perf/tokens_per_second"] = sum(seq_lens) / max(timing["step"], 1e-9)
        if "update_actor" in timing:
            # The update runs ppo_epochs forward+backward passes over the rows it trains (v2: the blind answers
            # too), on every device at once.
            epochs = cfg.worker.actor.ppo_epochs
            trained_lens = update_batch.batch["attention_mask"].sum(-1).tolist()
            value = mfu(self.hf_config, trained_lens * epochs, timing["update_actor"], n_devices=cfg.trainer.world_size)
            if value is not None:
                metrics["perf/mfu_actor"] = value
        return metrics

    def _hop_update_args(self) -> dict[str, Any]:
        cfg = self.config
        return {
            "second_hop_weight": self.hop_cfg.second_hop_weight,
            "world_size": cfg.trainer.world_size,
            "mini_batches": max(cfg.data.rollout_batch_size // cfg.worker.actor.global_batch_size, 1),
            "loss_avg_mode": cfg.worker.actor.loss_avg_mode,
            "norm_adv_by_std": cfg.algorithm.norm_adv_by_std_in_grpo,
        }

    def shutdown(self) -> None:
        if "_reward_thread" in self.__dict__:
            self._reward_thread.shutdown(wait=False, cancel_futures=True)
        super().shutdown()

    # ------------------------------------------------------------------ validation

    def validate(self) -> dict[str, float]:
        """Greedy (``val_override_config``) generations on the validation set, scored with the validation
        reward; writes every response to ``trainer.response_path`` and returns ``val/`` metrics."""
        if self.val_dataset is None:
            return {}
        size = self.config.data.val_batch_size if self.config.data.val_batch_size > 0 else len(self.val_dataset)
        loader = ResumableDataLoader(self.val_dataset, size, shuffle=False, drop_last=False)
        per_source: dict[str, list[float]] = defaultdict(list)
        blind_right, shortcut, rows_written = 0, 0, 0
        path = self.config.trainer.response_path
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "a", encoding="utf-8") as out_file:
            for rows in loader:
                batch = DataProto.from_single_dict(rows)
                gen = batch.select(
                    batch_keys=["input_ids", "attention_mask", "position_ids"],
                    non_tensor_batch_keys=[
                        k for k in ("raw_prompt_ids", "multi_modal_data") if k in batch.non_tensor_batch
                    ],
                )
                gen.meta_info.update(validate=True, n=1)
                out, hop = self._rollout(gen, batch)
                for key in ("input_ids", "attention_mask", "position_ids"):
                    batch.batch.pop(key)
                batch = batch.union(out.select(batch_keys=list(out.batch.keys()), non_tensor_batch_keys=[]))
                if hop is not None:
                    batch.non_tensor_batch["blind_answer"] = hop.column()
                elif self.hop is not None:
                    hop = self.hop.annotate(batch)
                _, components = self.val_reward_fn.compute_reward(batch)
                responses = self._decode_responses(batch)
                blind = batch.non_tensor_batch.get("blind_answer")
                right = hop.blind_right() if hop is not None else None
                for i, score in enumerate(components["overall"]):
                    per_source[str(batch.non_tensor_batch["data_source"][i])].append(score)
                    record = {
                        "step": self.global_step,
                        "dataset_index": int(batch.non_tensor_batch["dataset_index"][i]),
                        "data_source": str(batch.non_tensor_batch["data_source"][i]),
                        "prompt": str(batch.non_tensor_batch["raw_question"][i]),
                        "response": responses[i],
                        "ground_truth": str(batch.non_tensor_batch["ground_truth"][i]),
                        "scores": {k: v[i] for k, v in components.items()},
                        "blind_answer": blind[i] if blind is not None else None,
                    }
                    if right is not None:  # a response without a usable description has a wrong blind answer
                        blind_right += right[i]
                        shortcut += score > 0 and not right[i]
                    out_file.write(json.dumps(record, ensure_ascii=False) + "\n")
                    rows_written += 1
        self._log_generations(path, rows_written)
        metrics = {f"val/{source}/overall": float(np.mean(v)) for source, v in per_source.items()}
        metrics["val/overall"] = float(np.mean([s for v in per_source.values() for s in v]))
        if self.hop is not None:
            metrics["val/blind_accuracy"] = blind_right / max(rows_written, 1)
            metrics["val/language_shortcut_rate"] = shortcut / max(rows_written, 1)
        return metrics

    def _log_generations(self, path: str, rows_written: int) -> None:
        """Show ``trainer.val_generations_to_log`` of this validation's responses through the logger."""
        count = min(self.config.trainer.val_generations_to_log, rows_written)
        if count <= 0:
            return
        with open(path, encoding="utf-8") as f:
            records = [json.loads(line) for line in f.readlines()[-rows_written:][:count]]
        for record in records:
            logger.info(
                "val sample %d (step %d): %r -> %r (truth %r, blind %r, score %s)",
                record["dataset_index"],
                record["step"],
                record["prompt"][:200],
                record["response"][:400],
                record["ground_truth"],
                record["blind_answer"],
                record["scores"].get("overall"),
            )

    # ------------------------------------------------------------------ non-finite guard

    def _check_finite(self, metrics: dict[str, Any]) -> None:
        """Count steps in a row whose actor update skipped a mini-batch for a NaN/inf loss or grad norm; warn
        on each and stop after ``trainer.max_consecutive_nonfinite_steps``."""
        skipped = metrics.get("actor/non_finite_skipped", 0.0)
        if not skipped:
            self._nonfinite_streak = 0
            return
        self._nonfinite_streak += 1
        limit = self.config.trainer.max_consecutive_nonfinite_steps
        logger.warning(
            "step %d: actor update skipped (%g mini-batch(es)): non-finite loss or grad norm; %d step(s) in a row "
            "(limit trainer.max_consecutive_nonfinite_steps=%d)",
            self.global_step,
            skipped,
            self._nonfinite_streak,
            limit,
        )
        if limit != -1 and self._nonfinite_streak >= limit:
            raise TrainingAborted(
                f"stopped at step {self.global_step}: the actor update was skipped for a non-finite loss or grad "
                f"norm {self._nonfinite_streak} steps in a row (trainer.max_consecutive_nonfinite_steps={limit}). "
                f"Check the learning rate, the rewards and the data of these steps; {self._resume_advice()}"
            )


def _reward_view(batch: DataProto) -> DataProto:
    """A view of ``batch`` for the reward thread: the same tensors, its own containers, so the rows the driver
    adds, reorders or replaces meanwhile do not change what is graded."""
    return DataProto.from_dict(
        tensors=dict(batch.batch.items()), non_tensors=dict(batch.non_tensor_batch), meta_info=dict(batch.meta_info)
    )
