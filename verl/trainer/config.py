"""The PPO/GRPO run config: ``data``, ``algorithm`` (with the self-reward second hop), ``worker`` and ``trainer``.

Load it with ``load_config(PPOConfig, sys.argv[1:])`` (see :mod:`verl.utils.config_utils`). Key names and
defaults follow EasyR1; what differs is said on the field. Every section validates itself in ``post_init``;
``PPOConfig.post_init`` then copies settings between sections and checks the batch arithmetic, so a bad
combination fails at start-up with the keys, their values and a fix instead of deep inside a worker.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass, field
from typing import Literal

from ..utils.config_utils import ConfigError, derived, require
from ..workers.config import ActorConfig, CriticConfig, WorkerConfig

logger = logging.getLogger(__name__)

__all__ = [
    "LOGGERS",
    "AlgorithmConfig",
    "DataConfig",
    "ExternalHopConfig",
    "PPOConfig",
    "SelfRewardConfig",
    "TrainerConfig",
    "resolve_resume_mode",
]

AdvEstimator = Literal[
    "grpo", "rloo", "reinforce_plus_plus", "reinforce_plus_plus_baseline", "remax", "gae", "grpo_passk"
]
"""Accepted ``adv_estimator`` names; EasyR1's ``grpo_passk`` is accepted by name and refused in ``post_init``."""
GROUP_ESTIMATORS = ("grpo", "rloo", "reinforce_plus_plus_baseline")
"""Estimators whose baseline is the other responses to the same prompt: they need ``worker.rollout.n >= 2``."""

Logger = Literal["console", "file", "wandb", "tensorboard", "swanlab", "mlflow"]
LOGGERS: tuple[str, ...] = ("console", "file", "wandb", "tensorboard", "swanlab", "mlflow")


def _yaml_text(value: object) -> str:
    """A value as the user wrote it: ``true``, ``'external'``."""
    return str(value).lower() if isinstance(value, bool) else repr(value)


def _resolve_template(value: str | None, key: str) -> str | None:
    """A template file becomes an absolute path; text with Jinja markup is an inline template; else an error."""
    if value is None or not value.strip():
        return None
    if os.path.isfile(value):
        return os.path.abspath(value)
    if "{{" in value or "{%" in value:
        return value
    raise ConfigError(f"template file {value!r} not found (resolved to {os.path.abspath(value)!r})", key=key)


def resolve_resume_mode(resume_mode: str | None, find_last_checkpoint: bool, load_checkpoint_path: str | None) -> str:
    """``trainer.resume_mode`` from EasyR1's ``find_last_checkpoint`` when it is not set explicitly.

    ``find_last_checkpoint=true`` → ``auto``; ``false`` → ``path`` with ``load_checkpoint_path``, else
    ``disable``. An explicit ``resume_mode=auto`` with ``find_last_checkpoint=false`` is a contradiction.
    """
    if resume_mode is None:
        if find_last_checkpoint:
            return "auto"
        return "path" if load_checkpoint_path is not None else "disable"
    require(
        find_last_checkpoint or resume_mode != "auto",
        "resume_mode",
        "'auto' contradicts trainer.find_last_checkpoint=false; set one of them",
    )
    return resume_mode


@dataclass
class DataConfig:
    """Where the prompts come from and how they are turned into model inputs."""

    train_files: str = ""
    """``owner/dataset@split`` on the Hugging Face hub, or a local .parquet/.json/.jsonl file or folder"""
    val_files: str = ""
    """as ``train_files``, for validation"""
    prompt_key: str = "problem"
    """column with the question (EasyR1 default: ``prompt``; Vision-SR1 data uses ``problem``)"""
    answer_key: str = "answer"
    """column with the ground truth"""
    image_key: str = "images"
    """column with the image(s)"""
    video_key: str = "videos"
    """column with the video(s) of a row: each a file path (relative to ``image_dir``) or a list of frames"""
    image_dir: str | None = None
    """folder that relative image paths are read from"""
    video_fps: float = 2.0
    """frames per second sampled from video files (a frame list is taken as sampled at this rate)"""
    max_prompt_length: int = 512
    """prompt tokens (image tokens included); longer prompts are filtered out or are an error"""
    max_response_length: int = 512
    """generated tokens per response"""
    rollout_batch_size: int = 512
    """prompts per training step"""
    mini_rollout_batch_size: int | None = None
    """prompts per data-loader batch when online filtering refills a step in pieces; ``None`` =
    ``rollout_batch_size``"""
    val_batch_size: int = -1
    """prompts per validation batch; -1 = the whole validation set at once"""
    format_prompt: str | None = None
    """Jinja template file applied to each question (``{{ content }}`` is the question), made absolute; inline
    template text (containing ``{{``) is also accepted"""
    override_chat_template: str | None = None
    """chat template replacing the tokenizer's: a template file (made absolute) or inline Jinja text"""
    shuffle: bool = True
    seed: int = 1
    """seed of the shuffling order"""
    min_pixels: int | None = 262144
    """images smaller than this many pixels are upscaled; ``null`` = no lower bound"""
    max_pixels: int | None = 4194304
    """images larger than this many pixels are downscaled; ``null`` = no upper bound"""
    filter_overlong_prompts: bool = True
    """drop (and count) prompts longer than ``max_prompt_length``; False makes them an error"""
    filter_overlong_prompts_workers: int = 16
    """EasyR1's process count for the length filter; here prompts are measured as rows are read, in the
    data-loader workers (``dataloader_num_workers``), so only the default is accepted"""
    skip_bad_rows: bool = False
    """drop (and count) unreadable rows (missing image, empty question) instead of failing"""
    dataloader_num_workers: int = 0
    """data-loader worker processes; 0 loads in the trainer process"""

    def post_init(self) -> None:
        for name in ("max_prompt_length", "max_response_length", "rollout_batch_size"):
            value = getattr(self, name)
            require(value >= 1, name, f"must be >= 1, got {value}")
        if self.mini_rollout_batch_size is not None:
            require(
                self.mini_rollout_batch_size >= 1,
                "mini_rollout_batch_size",
                f"must be >= 1 or null, got {self.mini_rollout_batch_size}",
            )
        require(
            self.val_batch_size == -1 or self.val_batch_size >= 1,
            "val_batch_size",
            f"must be -1 (all at once) or >= 1, got {self.val_batch_size}",
        )
        require(self.video_fps > 0, "video_fps", f"must be > 0, got {self.video_fps}")
        require(
            self.filter_overlong_prompts_workers == 16,
            "filter_overlong_prompts_workers",
            f"the length filter runs as rows are read, not in a process pool (got {self.filter_overlong_prompts_workers}"
            "); use data.dataloader_num_workers to read rows in parallel",
        )
        require(
            self.dataloader_num_workers >= 0,
            "dataloader_num_workers",
            f"must be >= 0, got {self.dataloader_num_workers}",
        )
        for name in ("min_pixels", "max_pixels"):
            value = getattr(self, name)
            require(value is None or value >= 1, name, f"must be >= 1 or null, got {value}")
        if self.min_pixels is not None and self.max_pixels is not None:
            require(
                self.min_pixels <= self.max_pixels,
                "min_pixels",
                f"must be <= data.max_pixels, got {self.min_pixels} > {self.max_pixels}",
            )
        if self.image_dir is not None:
            require(os.path.isdir(self.image_dir), "image_dir", f"folder {self.image_dir!r} not found")
            self.image_dir = os.path.abspath(self.image_dir)
        for name in ("train_files", "val_files"):
            value = getattr(self, name)
            if value and os.path.exists(value):  # Ray workers may start in another directory
                setattr(self, name, os.path.abspath(value))
        self.format_prompt = _resolve_template(self.format_prompt, "format_prompt")
        self.override_chat_template = _resolve_template(self.override_chat_template, "override_chat_template")


@dataclass
class ExternalHopConfig:
    """An OpenAI-compatible endpoint (e.g. a vLLM server) that answers the second hop instead of the policy.

    Only the *names* of environment variables are configured, never the values: keys do not belong in files.
    """

    base_url_env: str = "SELF_REWARD_BASE_URL"
    """environment variable holding the endpoint URL, e.g. ``http://localhost:8000/v1``"""
    model_env: str = "SELF_REWARD_MODEL"
    """environment variable holding the served model name"""
    api_key_env: str = "SELF_REWARD_API_KEY"
    """environment variable holding the API key (may be unset for a local server)"""
    concurrency: int = 16
    """requests in flight at once"""
    timeout: float = 60.0
    """seconds per request before it is retried"""
    max_retries: int = 3
    """retries per request; an answer still missing afterwards scores 0 and is counted, never guessed"""

    def post_init(self) -> None:
        for name in ("base_url_env", "model_env", "api_key_env"):
            value = getattr(self, name)
            require(value.isidentifier(), name, f"must be an environment variable name, got {value!r}")
        require(self.concurrency >= 1, "concurrency", f"must be >= 1, got {self.concurrency}")
        require(self.timeout > 0, "timeout", f"must be > 0 seconds, got {self.timeout}")
        require(self.max_retries >= 0, "max_retries", f"must be >= 0, got {self.max_retries}")


@dataclass
class SelfRewardConfig:
    """The second hop: a blind (text-only) answer from each response's ``<description>`` is graded against the
    ground truth, giving the perception reward (paper arXiv 2508.19652)."""

    enable: bool = False
    """run the second hop; when False it does not run at all"""
    mode: Literal["sum", "multi_reward"] = "sum"
    """``sum`` (paper v1): perception is added to the overall reward; ``multi_reward`` (v2): accuracy and
    perception get their own group-normalised advantages, combined with ``algorithm.reward_channels``"""
    max_tokens: int = 256
    """tokens generated per blind answer"""
    temperature: float = 1.0
    """sampling temperature of the blind answer. 1.0 samples like the paper's runs (the reference
    implementation reuses the rollout's sampling, temperature 1.0); 0 = greedy, a less noisy perception score
    (trained blind answers are scored at their own temperature, a greedy one at 1)"""
    top_p: float = 1.0
    """nucleus sampling of the blind answer"""
    n: int = 1
    """blind answers per description; the perception reward is their mean accuracy (paper: 1)"""
    train_second_hop: bool = False
    """also train on the blind answers (v2): each one a row with its own grade, log-probs, KL and advantage"""
    second_hop_weight: float = 0.5
    """``h``: the update minimises ``(1 - h) * L_first + h * L_second``, each hop's loss averaged over its own
    tokens (rows, for the sequence ``loss_avg_mode``s)"""
    leak_guard: bool = False
    """score 0 perception for a description that already states the final answer (guards the leak where the
    answer is copied into the description)"""
    backend: Literal["policy", "external"] = "policy"
    """``policy``: the current policy answers through the rollout engine in the same step; ``external``: an
    OpenAI-compatible endpoint (``external``) answers"""
    external: ExternalHopConfig = field(default_factory=ExternalHopConfig)
    pipelined: bool = True
    """run the blind answers inside the rollout (the policy backend on the vLLM engine): the rollout stops each
    response at ``</description>``, then one engine call finishes every response from its own tokens together
    with the blind answers. False: the hop is a separate generation after the rollout. The HF engine and the
    external backend always use the separate one"""

    def post_init(self) -> None:
        require(self.n >= 1, "n", f"must be >= 1, got {self.n}")
        require(self.max_tokens >= 1, "max_tokens", f"must be >= 1, got {self.max_tokens}")
        require(self.temperature >= 0, "temperature", f"must be >= 0 (0 = greedy), got {self.temperature}")
        require(0.0 < self.top_p <= 1.0, "top_p", f"must be in (0, 1], got {self.top_p}")
        require(
            0.0 <= self.second_hop_weight <= 1.0,
            "second_hop_weight",
            f"must be in [0, 1], got {self.second_hop_weight}",
        )
        for name, value, default in (
            ("mode", self.mode, "sum"),
            ("backend", self.backend, "policy"),
            ("train_second_hop", self.train_second_hop, False),
            ("leak_guard", self.leak_guard, False),
        ):
            require(
                self.enable or value == default,
                name,
                f"{_yaml_text(value)} needs the second hop; set algorithm.self_reward.enable=true",
            )
        require(
            not self.train_second_hop or self.backend == "policy",
            "train_second_hop",
            "trains the policy on its own blind answers, so it needs algorithm.self_reward.backend=policy "
            f"(got backend={self.backend!r})",
        )


@dataclass
class AlgorithmConfig:
    """Advantages, KL and reward shaping."""

    gamma: float = 1.0
    """discount factor (GAE)"""
    lam: float = 1.0
    """GAE lambda"""
    adv_estimator: AdvEstimator = "grpo"
    """advantage estimator; ``gae`` trains a critic (``worker.critic``); EasyR1's ``grpo_passk`` is not built
    yet and is refused"""
    norm_adv_by_std_in_grpo: bool = True
    """GRPO: divide by the group's reward std (False = Dr. GRPO)"""
    disable_kl: bool = False
    """no KL at all and no reference model; wins over ``use_kl_loss`` (as in EasyR1)"""
    use_kl_loss: bool = False
    """KL as a loss term of the actor (GRPO) instead of a penalty inside the reward; ignored (with a log line)
    when ``disable_kl`` is true"""
    kl_penalty: Literal["kl", "abs", "mse", "low_var_kl", "full"] = "kl"
    """KL estimator: ``kl`` (k1), ``abs``, ``mse`` (k2), ``low_var_kl`` (k3); ``full`` is refused (the batch
    carries the sampled tokens' log-probs, not whole distributions)"""
    kl_coef: float = 1e-3
    """KL coefficient (the initial one for the adaptive controller)"""
    kl_type: Literal["fixed", "adaptive"] = "fixed"
    """KL-in-reward controller"""
    kl_horizon: float = 10000.0
    """adaptive controller horizon"""
    kl_target: float = 0.1
    """adaptive controller target KL"""
    online_filtering: bool = False
    """drop the groups whose training signal is the same for every response (zero advantage) and refill (DAPO)"""
    filter_key: str = "overall"
    """the signal of online filtering (a reward component), whatever its range; with ``reward_channels`` the
    weighted channels are the signal and ``filter_key`` only feeds ``filter_low``/``filter_high``"""
    filter_low: float | None = None
    """optional: also drop groups whose mean ``filter_key`` is not above this"""
    filter_high: float | None = None
    """optional: also drop groups whose mean ``filter_key`` is not below this"""
    reward_channels: dict[str, float] = field(default_factory=dict)
    """weights of reward channels that each get their own GRPO advantage, e.g. ``{accuracy: 1.0, perception:
    1.0}``; empty = one channel, ``overall``. ``self_reward.mode=multi_reward`` fills that example when empty"""
    self_reward: SelfRewardConfig = field(default_factory=SelfRewardConfig)
    use_critic: bool = derived(False, "algorithm.adv_estimator (gae)")
    use_reference_policy: bool = derived(True, "algorithm.disable_kl")

    def post_init(self) -> None:
        require(
            self.adv_estimator != "grpo_passk",
            "adv_estimator",
            "'grpo_passk' (EasyR1's pass@k advantage) is not built yet; use grpo, rloo, reinforce_plus_plus, "
            "reinforce_plus_plus_baseline, remax or gae",
        )
        require(0.0 <= self.gamma <= 1.0, "gamma", f"must be in [0, 1], got {self.gamma}")
        require(0.0 <= self.lam <= 1.0, "lam", f"must be in [0, 1], got {self.lam}")
        require(self.kl_coef >= 0, "kl_coef", f"must be >= 0, got {self.kl_coef}")
        require(self.kl_horizon > 0, "kl_horizon", f"must be > 0, got {self.kl_horizon}")
        require(
            self.disable_kl or self.kl_penalty != "full",
            "kl_penalty",
            "full (exact KL over the vocabulary) needs the reference model's whole distribution at every token, "
            "but the batch carries only the sampled tokens' log-probs; use low_var_kl (k3, unbiased, >= 0), kl, "
            "abs or mse",
        )
        if self.disable_kl and self.use_kl_loss:
            logger.info("algorithm.disable_kl=true: no KL term, so algorithm.use_kl_loss=true is ignored")
            self.use_kl_loss = False
        if self.online_filtering and self.filter_low is not None and self.filter_high is not None:
            require(
                self.filter_low < self.filter_high,
                "filter_low",
                f"must be < algorithm.filter_high, got {self.filter_low} >= {self.filter_high}",
            )
        require(
            not (self.self_reward.train_second_hop and not self.disable_kl and not self.use_kl_loss),
            "self_reward.train_second_hop",
            "gives the blind answers their own KL as a loss term; with the KL in the reward "
            "(algorithm.use_kl_loss=false) they would get none: set algorithm.use_kl_loss=true (the paper's "
            "recipe) or algorithm.disable_kl=true",
        )
        if self.self_reward.mode == "multi_reward" and not self.reward_channels:
            self.reward_channels = {"accuracy": 1.0, "perception": 1.0}
        for name, weight in self.reward_channels.items():
            require(math.isfinite(weight), f"reward_channels.{name}", f"must be a finite number, got {weight}")
        if self.reward_channels:
            require(
                any(weight != 0 for weight in self.reward_channels.values()),
                "reward_channels",
                f"needs at least one non-zero weight, got {self.reward_channels}",
            )
            source = "algorithm.self_reward.mode=multi_reward" if self.self_reward.mode == "multi_reward" else "it"
            require(
                self.adv_estimator == "grpo",
                "reward_channels",
                f"{self.reward_channels} gives each channel its own group-normalised (GRPO) advantage, so "
                f"{source} needs algorithm.adv_estimator=grpo (got {self.adv_estimator!r})",
            )
        self.use_critic = self.adv_estimator == "gae"
        self.use_reference_policy = not self.disable_kl


@dataclass
class TrainerConfig:
    """The loop: length, devices, logging, validation and checkpoints."""

    total_epochs: int = 1
    """passes over the training data (EasyR1 default 15; the paper trains 1)"""
    max_steps: int | None = None
    """stop after this many steps; overrides ``total_epochs``"""
    project_name: str = "vision_sr1"
    experiment_name: str = "demo"
    logger: list[Logger] = field(default_factory=lambda: ["console", "file"])
    """metric sinks; ``[console,file]`` or ``console,file`` on the command line"""
    nnodes: int = 1
    n_gpus_per_node: int = 8
    """ranks per node (GPUs, or CPU processes with ``device=cpu``)"""
    device: Literal["auto", "cuda", "cpu"] = "auto"
    """``auto`` = cuda when available, else cpu"""
    critic_warmup: int = 0
    """steps that train only the critic"""
    val_freq: int = -1
    """validate every this many steps; -1 = never during training"""
    val_before_train: bool = True
    val_only: bool = False
    """validate once and exit"""
    val_generations_to_log: int = 0
    """validation samples sent to the generation logger"""
    save_freq: int = -1
    """checkpoint every this many steps; -1 = only at the end"""
    save_limit: int = -1
    """checkpoints kept; -1 = all"""
    save_model_only: bool = False
    """save weights without optimizer state (cannot resume the optimizer)"""
    save_checkpoint_path: str | None = None
    """checkpoint folder; ``None`` = ``checkpoints/<project_name>/<experiment_name>``; made absolute"""
    load_checkpoint_path: str | None = None
    """a ``global_step_N`` folder to resume from; made absolute"""
    find_last_checkpoint: bool = True
    """EasyR1's switch: true resumes from the newest checkpoint (``resume_mode=auto``); false starts fresh
    (``resume_mode=disable``), or resumes from ``load_checkpoint_path`` when it is set (``resume_mode=path``)"""
    resume_mode: Literal["auto", "disable", "path"] | None = None
    """``auto``: resume from the newest complete checkpoint in ``save_checkpoint_path``, else from
    ``load_checkpoint_path`` when set; ``disable``: start fresh; ``path``: resume from ``load_checkpoint_path``.
    ``None`` (default) = from ``find_last_checkpoint``; set explicitly it wins over ``find_last_checkpoint``"""
    ray_timeline: str | None = None
    """EasyR1's Ray timeline dump; not built here, so only ``null`` is accepted"""
    max_try_make_batch: int = 20
    """online filtering: most generation rounds to fill one step; -1 = no limit"""
    response_path: str | None = None
    """JSONL file receiving validation responses and scores; ``None`` =
    ``<save_checkpoint_path>/responses.jsonl``; made absolute"""
    seed: int = 1
    """seed of model init and sampling"""
    ray_num_cpus: int | None = None
    """CPUs Ray may use; ``None`` = all"""
    max_consecutive_nonfinite_steps: int = 5
    """stop the run when this many steps in a row skipped an actor update because the loss or grad norm was
    NaN/inf (each skip is logged and counted in ``actor/non_finite_skipped``); -1 = never stop"""

    @property
    def world_size(self) -> int:
        """Training ranks: ``nnodes * n_gpus_per_node``."""
        return self.nnodes * self.n_gpus_per_node

    def post_init(self) -> None:
        for name in ("total_epochs", "nnodes", "n_gpus_per_node"):
            value = getattr(self, name)
            require(value >= 1, name, f"must be >= 1, got {value}")
        require(
            self.max_steps is None or self.max_steps >= 1, "max_steps", f"must be >= 1 or null, got {self.max_steps}"
        )
        for name in ("val_freq", "save_freq", "save_limit", "max_try_make_batch", "max_consecutive_nonfinite_steps"):
            value = getattr(self, name)
            require(value == -1 or value >= 1, name, f"must be -1 (off/unlimited) or >= 1, got {value}")
        for name in ("critic_warmup", "val_generations_to_log"):
            value = getattr(self, name)
            require(value >= 0, name, f"must be >= 0, got {value}")
        require(
            self.ray_num_cpus is None or self.ray_num_cpus >= 1,
            "ray_num_cpus",
            f"must be >= 1 or null, got {self.ray_num_cpus}",
        )
        self.logger = list(dict.fromkeys(self.logger))
        if self.save_checkpoint_path is None:
            self.save_checkpoint_path = os.path.join("checkpoints", self.project_name, self.experiment_name)
        self.save_checkpoint_path = os.path.abspath(self.save_checkpoint_path)
        if self.response_path is None:
            self.response_path = os.path.join(self.save_checkpoint_path, "responses.jsonl")
        self.response_path = os.path.abspath(self.response_path)
        require(
            self.ray_timeline is None,
            "ray_timeline",
            f"writing a Ray timeline is not supported (got {self.ray_timeline!r}); remove the key",
        )
        self.resume_mode = resolve_resume_mode(self.resume_mode, self.find_last_checkpoint, self.load_checkpoint_path)
        if self.resume_mode == "path":
            require(
                self.load_checkpoint_path is not None,
                "resume_mode",
                "'path' needs trainer.load_checkpoint_path (a global_step_N folder)",
            )
        if self.load_checkpoint_path is not None:
            require(
                self.resume_mode != "disable",
                "load_checkpoint_path",
                "is set but trainer.resume_mode=disable; remove one of them",
            )
            require(
                os.path.isdir(self.load_checkpoint_path),
                "load_checkpoint_path",
                f"folder {self.load_checkpoint_path!r} not found",
            )
            self.load_checkpoint_path = os.path.abspath(self.load_checkpoint_path)


@dataclass
class PPOConfig:
    """The whole run: ``python3 -m verl.trainer.main config=run.yaml key.sub=value ...``."""

    data: DataConfig = field(default_factory=DataConfig)
    worker: WorkerConfig = field(default_factory=WorkerConfig)
    algorithm: AlgorithmConfig = field(default_factory=AlgorithmConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)

    def post_init(self) -> None:
        """Copy settings across sections, then check what only holds across sections (all problems at once)."""
        data, algo, trainer = self.data, self.algorithm, self.trainer
        actor, critic, rollout = self.worker.actor, self.worker.critic, self.worker.rollout
        rollout.prompt_length = data.max_prompt_length
        rollout.response_length = data.max_response_length
        rollout.trust_remote_code = actor.model.trust_remote_code
        self.worker.seed = trainer.seed
        actor.disable_kl = algo.disable_kl
        actor.use_kl_loss = algo.use_kl_loss
        actor.kl_penalty = algo.kl_penalty
        actor.kl_coef = algo.kl_coef
        self.worker.seed = trainer.seed
        self.worker.save_model_only = trainer.save_model_only

        problems: list[str] = []
        world = trainer.world_size
        world_text = (
            f"world size {world} (trainer.nnodes={trainer.nnodes} x trainer.n_gpus_per_node={trainer.n_gpus_per_node})"
        )
        n = rollout.n

        if algo.adv_estimator in GROUP_ESTIMATORS and n < 2:
            problems.append(
                f"algorithm.adv_estimator={algo.adv_estimator} compares the responses to the same prompt, so it "
                f"needs worker.rollout.n >= 2 (got {n}); set worker.rollout.n=8 (the paper) or use remax/gae"
            )
        samples = data.rollout_batch_size * n
        if samples % world:
            problems.append(
                f"data.rollout_batch_size={data.rollout_batch_size} x worker.rollout.n={n} = {samples} responses "
                f"must split evenly over the {world_text}; change data.rollout_batch_size or the number of ranks"
            )
        if rollout.tensor_parallel_size > trainer.n_gpus_per_node or world % rollout.tensor_parallel_size:
            problems.append(
                f"worker.rollout.tensor_parallel_size={rollout.tensor_parallel_size} must divide the {world_text} "
                f"and be <= trainer.n_gpus_per_node"
            )
        total_length = data.max_prompt_length + data.max_response_length
        if rollout.max_model_len is not None and rollout.max_model_len < total_length:
            problems.append(
                f"worker.rollout.max_model_len={rollout.max_model_len} is shorter than data.max_prompt_length + "
                f"data.max_response_length = {total_length}; raise it or set it to null"
            )
        actor.global_batch_size_per_device = self._check_update_batch("actor", actor, world, problems)
        if algo.use_critic:
            if critic.model.model_path is None:
                problems.append(
                    "algorithm.adv_estimator=gae trains a value model: set worker.critic.model.model_path "
                    "(e.g. to the actor's model path)"
                )
            critic.global_batch_size_per_device = self._check_update_batch("critic", critic, world, problems)
        if problems:
            raise ConfigError.combine([ConfigError(problem) for problem in problems])

    def _check_update_batch(
        self, role: str, section: ActorConfig | CriticConfig, world: int, problems: list[str]
    ) -> int:
        """Responses per update mini-batch on one data-parallel rank, checking the arithmetic that gives it."""
        data, n = self.data, self.worker.rollout.n
        key = f"worker.{role}"
        gbs, ulysses = section.global_batch_size, section.ulysses_size
        if data.rollout_batch_size % gbs:
            fits = max(d for d in range(1, min(gbs, data.rollout_batch_size) + 1) if data.rollout_batch_size % d == 0)
            problems.append(
                f"data.rollout_batch_size={data.rollout_batch_size} prompts must be a multiple of "
                f"{key}.global_batch_size={gbs} prompts per update; e.g. set {key}.global_batch_size={fits}"
            )
        fsdp_size = section.fsdp.fsdp_size
        if fsdp_size != -1 and (fsdp_size > world or world % fsdp_size):
            problems.append(
                f"{key}.fsdp.fsdp_size={fsdp_size} ranks per sharding group must divide the world size {world} "
                "(-1 shards over all ranks; a divisor gives hybrid sharding)"
            )
        if world % ulysses:
            problems.append(f"{key}.ulysses_size={ulysses} must divide the world size {world}")
            return -1
        dp = world // ulysses
        mini = gbs * n
        if mini % dp:
            problems.append(
                f"{key}.global_batch_size={gbs} x worker.rollout.n={n} = {mini} responses per update must split "
                f"evenly over {dp} data-parallel ranks (world size {world} / {key}.ulysses_size={ulysses}); "
                f"raise {key}.global_batch_size or use fewer ranks"
            )
            return -1
        per_device = mini // dp
        micro = section.micro_batch_size_per_device_for_update
        if not section.dynamic_batching and per_device % micro:
            problems.append(
                f"{key}.micro_batch_size_per_device_for_update={micro} must divide the {per_device} responses per "
                f"device per update ({key}.global_batch_size={gbs} x worker.rollout.n={n} / {dp} ranks); use a "
                f"divisor of {per_device} or {key}.dynamic_batching=true"
            )
        # Token-budget micro-batches and the v2 update (blind-answer rows added to each mini-batch) accumulate too.
        second_hop = role == "actor" and self.algorithm.self_reward.train_second_hop
        accumulates = per_device != micro or section.dynamic_batching or second_hop
        if section.fsdp.fsdp_version == 1 and section.fsdp.enable_cpu_offload and accumulates:
            problems.append(
                f"{key}.fsdp.enable_cpu_offload=true with FSDP1 forbids gradient accumulation: set "
                f"{key}.micro_batch_size_per_device_for_update={per_device}, {key}.dynamic_batching=false and "
                f"algorithm.self_reward.train_second_hop=false, or use {key}.fsdp.fsdp_version=2"
            )
        return per_device
