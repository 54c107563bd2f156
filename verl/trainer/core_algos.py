"""The RL math: advantage estimators, policy/value losses, loss aggregation, KL estimators and controllers.

Every function here is pure (tensors in, tensors out) and response-mask aware. Shapes:

- token-level tensors are ``(batch, response_len)``; ``response_mask`` is 1 on valid response tokens and 0 on
  padding. Outputs are 0 on padding and never NaN there, whatever the inputs hold at padded positions;
- ``token_level_rewards`` carry a response's outcome reward (usually on its last valid token), so the
  sequence score of an outcome estimator is ``token_level_rewards.sum(-1)``;
- ``index`` is an array of group ids (one uid per prompt, repeated for its ``n`` responses).

Estimators are registered by name in ``ADV_ESTIMATORS`` (the values of ``algorithm.adv_estimator``) and run by
``compute_advantage``.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
import torch.utils.checkpoint

__all__ = [
    "ADV_ESTIMATORS",
    "KL_PENALTIES",
    "LOSS_AGG_MODES",
    "LOSS_TYPES",
    "AdaptiveKLController",
    "FixedKLController",
    "aggregate_loss",
    "apply_kl_penalty",
    "compute_advantage",
    "compute_gae_advantage_return",
    "compute_grpo_outcome_advantage",
    "compute_kl",
    "compute_multi_reward_advantage",
    "compute_policy_loss",
    "compute_reinforce_plus_plus_baseline_outcome_advantage",
    "compute_reinforce_plus_plus_outcome_advantage",
    "compute_remax_outcome_advantage",
    "compute_rloo_outcome_advantage",
    "compute_value_loss",
    "entropy_from_logits",
    "chunked_token_log_probs",
    "token_log_probs_from_logits",
    "get_adv_estimator",
    "get_kl_controller",
    "kl_from_logits",
    "masked_mean",
    "masked_sum",
    "masked_var",
    "masked_whiten",
]

# --------------------------------------------------------------------------------------------- masked helpers


def masked_sum(values: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """``sum(values * mask)``, with padded entries treated as 0 even when they hold NaN/inf."""
    zeroed = torch.where(mask.bool(), values, torch.zeros_like(values))
    return zeroed.sum() if dim is None else zeroed.sum(dim=dim)


def masked_mean(values: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """``sum(values * mask) / sum(mask)``; 0 where the mask is empty (not NaN)."""
    count = mask.to(values.dtype).sum() if dim is None else mask.to(values.dtype).sum(dim=dim)
    return masked_sum(values, mask, dim) / count.clamp(min=1.0)


def masked_var(values: torch.Tensor, mask: torch.Tensor, unbiased: bool = True) -> torch.Tensor:
    """Variance over the valid entries (all dimensions). ``unbiased`` applies Bessel's correction ``n / (n - 1)``;
    with fewer than two valid entries the variance is 0."""
    mean = masked_mean(values, mask)
    var = masked_mean((values - mean) ** 2, mask)
    if unbiased:
        count = float(mask.sum())
        var = var * (count / (count - 1.0)) if count > 1 else torch.zeros_like(var)
    return var


def masked_whiten(values: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True, eps: float = 1e-8) -> torch.Tensor:
    """``(values - mean) / sqrt(var + eps)`` over the valid entries (unbiased variance); 0 on padding.
    With ``shift_mean=False`` the mean is added back (scale only)."""
    mean = masked_mean(values, mask)
    whitened = (values - mean) * torch.rsqrt(masked_var(values, mask) + eps)
    if not shift_mean:
        whitened = whitened + mean
    return torch.where(mask.bool(), whitened, torch.zeros_like(whitened))


def entropy_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """Entropy of ``softmax(logits)`` over the last dimension: ``H = logsumexp(z) - sum_v softmax(z)_v * z_v``.

    Computed through ``logsumexp`` so large logits neither overflow nor lose precision."""
    probs = torch.softmax(logits, dim=-1)
    return torch.logsumexp(logits, dim=-1) - (probs * logits).sum(dim=-1)


def token_log_probs_from_logits(
    logits: torch.Tensor,
    targets: torch.Tensor,
    temperature: float | torch.Tensor = 1.0,
    with_entropy: bool = False,
    entropy_grad: bool = True,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Log-probability of each target token under ``softmax(logits / temperature)`` (and the entropy).

    ``logits`` (N, V) in any dtype, ``targets`` (N,), ``temperature`` a float or one per token (N,). The logits
    are divided in fp32; the log-probability is gathered first and ``logsumexp`` subtracted
    (``z_t - logsumexp(z)``), so no (N, V) log-softmax is built beside the logits. ``entropy_grad=False`` builds
    the entropy without autograd (it is only logged)."""
    scaled = logits.float()
    if isinstance(temperature, torch.Tensor):
        scaled = scaled / temperature.to(device=logits.device, dtype=torch.float32).unsqueeze(-1)
    elif temperature != 1.0:  # 1 divides nothing: no (N, V) copy for it
        scaled = scaled / temperature
    normaliser = torch.logsumexp(scaled, dim=-1)
    log_probs = scaled.gather(-1, targets.unsqueeze(-1)).squeeze(-1) - normaliser
    entropy = None
    if with_entropy and entropy_grad:
        entropy = entropy_from_logits(scaled)
    elif with_entropy:  # only logged: one (N, V) buffer, no graph; H = logsumexp(z) - sum_v p_v z_v
        with torch.no_grad():
            probs = (scaled - normaliser.unsqueeze(-1)).exp_()
            entropy = normaliser - (probs.unsqueeze(-2) @ scaled.unsqueeze(-1)).flatten()
    return log_probs, entropy


def chunked_token_log_probs(
    hidden: torch.Tensor,
    head: Callable[[torch.Tensor], torch.Tensor],
    targets: torch.Tensor,
    temperature: float | torch.Tensor = 1.0,
    with_entropy: bool = False,
    entropy_grad: bool = True,
    chunk_tokens: int = 512,
    score: Callable[..., tuple[torch.Tensor, torch.Tensor | None]] = token_log_probs_from_logits,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Log-probs (and entropies) of ``targets`` from the hidden states that predict them, a chunk at a time.

    ``hidden`` (N, H) are the language model's last hidden states at the positions that predict the (N,)
    ``targets``; ``head`` maps (n, H) to (n, V) logits (the output layer). Only ``chunk_tokens`` rows of logits
    exist at once: with autograd on, each chunk is checkpointed, so its logits are recomputed in the backward
    instead of being kept, and the memory is O(chunk x V) whatever N is. ``temperature`` is a float or one per
    target (N,); ``score`` turns a chunk of logits into log-probs and entropies
    (:func:`token_log_probs_from_logits` or a compiled copy of it)."""
    if chunk_tokens < 1:
        raise ValueError(f"chunk_tokens must be >= 1, got {chunk_tokens}")
    per_token = isinstance(temperature, torch.Tensor)

    def one_chunk(h: torch.Tensor, t: torch.Tensor, temp: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
        return score(head(h), t, temp, with_entropy, entropy_grad)

    log_probs, entropies = [], []
    for start in range(0, max(len(hidden), 1), chunk_tokens):
        piece = slice(start, start + chunk_tokens)
        temp = temperature[piece] if per_token else temperature
        if torch.is_grad_enabled():
            lp, ent = torch.utils.checkpoint.checkpoint(
                one_chunk, hidden[piece], targets[piece], temp, use_reentrant=False
            )
        else:
            lp, ent = one_chunk(hidden[piece], targets[piece], temp)
        log_probs.append(lp)
        entropies.append(ent)
    entropy = torch.cat(entropies) if with_entropy else None
    return torch.cat(log_probs), entropy


def _broadcast(scores: torch.Tensor, response_mask: torch.Tensor) -> torch.Tensor:
    """Per-sequence ``scores`` (batch,) → token level (batch, len), 0 on padding."""
    return scores.unsqueeze(-1).to(torch.float32) * response_mask.to(torch.float32)


# --------------------------------------------------------------------------------------------- group statistics


def _group_inverse(index: Sequence[Hashable] | np.ndarray, device: torch.device) -> tuple[torch.Tensor, int]:
    """Map group ids to 0..G-1 in order of first appearance."""
    ids: dict[Hashable, int] = {}
    inverse = [ids.setdefault(key.item() if isinstance(key, np.generic) else key, len(ids)) for key in index]
    return torch.tensor(inverse, dtype=torch.long, device=device), len(ids)


def _group_stats(
    scores: torch.Tensor, index: Sequence[Hashable] | np.ndarray
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per row, in float64: its group's mean, unbiased std, size, and whether the group carries a signal (two or
    more responses whose rewards are not all equal). Constant groups are flagged exactly (max == min), not through
    a std that rounding may leave at 1e-17."""
    if len(index) != scores.shape[0]:
        raise ValueError(f"index has {len(index)} group ids for {scores.shape[0]} scores")
    scores = scores.to(torch.float64)
    inverse, groups = _group_inverse(index, scores.device)
    zeros = torch.zeros(groups, dtype=torch.float64, device=scores.device)
    count = zeros.index_add(0, inverse, torch.ones_like(scores))
    mean = zeros.index_add(0, inverse, scores) / count
    squares = zeros.index_add(0, inverse, (scores - mean[inverse]) ** 2)
    std = (squares / (count - 1).clamp(min=1)).sqrt()
    high = zeros.scatter_reduce(0, inverse, scores, reduce="amax", include_self=False)
    low = zeros.scatter_reduce(0, inverse, scores, reduce="amin", include_self=False)
    informative = (count > 1) & (high > low)
    return mean[inverse], std[inverse], count[inverse], informative[inverse]


def _grpo_normalise(
    scores: torch.Tensor, index: Sequence[Hashable] | np.ndarray, norm_adv_by_std: bool, eps: float
) -> torch.Tensor:
    """``(r - mean_g) / (std_g + eps)`` (or ``r - mean_g``), 0 for groups of one; float32."""
    mean, std, _, informative = _group_stats(scores, index)
    centred = scores.to(torch.float64) - mean
    advantage = centred / (std + eps) if norm_adv_by_std else centred
    return torch.where(informative, advantage, torch.zeros_like(advantage)).to(torch.float32)


# --------------------------------------------------------------------------------------------- advantage estimators


@torch.no_grad()
def compute_grpo_outcome_advantage(
    token_level_rewards: torch.Tensor,
    response_mask: torch.Tensor,
    index: Sequence[Hashable] | np.ndarray,
    eps: float = 1e-6,
    norm_adv_by_std: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """GRPO (Shao et al. 2024, DeepSeekMath, arXiv 2402.03300): ``A_i = (r_i - mean_g(r)) / (std_g(r) + eps)``
    with ``r_i = sum_t token_level_rewards[i, t]``, mean/std (unbiased) over the responses of ``i``'s group.

    ``norm_adv_by_std=False`` is Dr. GRPO (Liu et al. 2025, arXiv 2503.20783): ``A_i = r_i - mean_g(r)``.
    Groups of one response and groups with equal rewards get ``A = 0``. Returns ``(advantages, returns)``, both
    ``A_i`` broadcast over the valid tokens.
    """
    scores = token_level_rewards.sum(dim=-1)
    advantages = _broadcast(_grpo_normalise(scores, index, norm_adv_by_std, eps), response_mask)
    return advantages, advantages


@torch.no_grad()
def compute_rloo_outcome_advantage(
    token_level_rewards: torch.Tensor, response_mask: torch.Tensor, index: Sequence[Hashable] | np.ndarray
) -> tuple[torch.Tensor, torch.Tensor]:
    """RLOO (Ahmadian et al. 2024, arXiv 2402.14740): each response's baseline is the mean reward of the
    *other* responses of its group, ``A_i = r_i - (sum_g(r) - r_i) / (n_g - 1) = n_g / (n_g - 1) * (r_i -
    mean_g(r))``. Groups of one get ``A = 0``."""
    scores = token_level_rewards.sum(dim=-1)
    mean, _, count, informative = _group_stats(scores, index)
    advantage = (scores.to(torch.float64) - mean) * count / (count - 1).clamp(min=1)
    advantage = torch.where(informative, advantage, torch.zeros_like(advantage)).to(torch.float32)
    advantages = _broadcast(advantage, response_mask)
    return advantages, advantages


@torch.no_grad()
def compute_reinforce_plus_plus_outcome_advantage(
    token_level_rewards: torch.Tensor, response_mask: torch.Tensor, gamma: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """REINFORCE++ (Hu 2025, arXiv 2501.03262): discounted return ``G_t = r_t + gamma * G_{t+1}`` (restarting
    after the last valid token), then ``A = whiten(G)`` over all valid tokens of the batch. Returns
    ``(advantages, returns)`` with ``returns = G``."""
    mask = response_mask.to(torch.float32)
    rewards = torch.where(response_mask.bool(), token_level_rewards.float(), torch.zeros_like(mask))
    returns = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[:, 0])
    for t in reversed(range(rewards.shape[1])):
        running = (rewards[:, t] + gamma * running) * mask[:, t]
        returns[:, t] = running
    return masked_whiten(returns, response_mask), returns


@torch.no_grad()
def compute_reinforce_plus_plus_baseline_outcome_advantage(
    token_level_rewards: torch.Tensor, response_mask: torch.Tensor, index: Sequence[Hashable] | np.ndarray
) -> tuple[torch.Tensor, torch.Tensor]:
    """REINFORCE++ with a group baseline (Hu 2025, arXiv 2501.03262): ``r_i - mean_g(r)`` broadcast over the
    valid tokens, then whitened over all valid tokens of the batch. Groups of one get ``r_i - mean = 0``
    before whitening (then the batch mean shift, like every other token)."""
    scores = token_level_rewards.sum(dim=-1)
    mean, _, _, informative = _group_stats(scores, index)
    centred = torch.where(informative, scores.to(torch.float64) - mean, torch.zeros_like(mean)).to(torch.float32)
    advantages = masked_whiten(_broadcast(centred, response_mask), response_mask)
    return advantages, advantages


@torch.no_grad()
def compute_remax_outcome_advantage(
    token_level_rewards: torch.Tensor, reward_baselines: torch.Tensor, response_mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """ReMax (Li et al. 2023, arXiv 2310.10505): ``A_i = r_i - b_i`` where ``b_i`` is the reward of the greedy
    response to the same prompt; broadcast over the valid tokens and returned as both advantages and returns."""
    advantages = _broadcast(token_level_rewards.sum(dim=-1) - reward_baselines.to(token_level_rewards.dtype),
                            response_mask)  # fmt: skip
    return advantages, advantages


@torch.no_grad()
def compute_gae_advantage_return(
    token_level_rewards: torch.Tensor,
    values: torch.Tensor,
    response_mask: torch.Tensor,
    gamma: float = 1.0,
    lam: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """GAE (Schulman et al. 2016, arXiv 1506.02438): ``delta_t = r_t + gamma * V_{t+1} - V_t`` and
    ``A_t = delta_t + gamma * lam * A_{t+1}``, skipping padded positions (``V`` and ``A`` after the last
    valid token are 0). ``returns = A + V`` (the critic's target, before whitening); the returned advantages are
    whitened over the valid tokens of the batch."""
    mask = response_mask.to(torch.float32)
    rewards = torch.where(response_mask.bool(), token_level_rewards.float(), torch.zeros_like(mask))
    values = torch.where(response_mask.bool(), values.float(), torch.zeros_like(mask))
    next_value = torch.zeros_like(rewards[:, 0])
    last_gae = torch.zeros_like(rewards[:, 0])
    advantages = torch.zeros_like(rewards)
    for t in reversed(range(rewards.shape[1])):
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        gae = delta + gamma * lam * last_gae
        valid = mask[:, t]
        next_value = valid * values[:, t] + (1 - valid) * next_value
        last_gae = valid * gae + (1 - valid) * last_gae
        advantages[:, t] = last_gae * valid
    returns = (advantages + values) * mask
    return masked_whiten(advantages, response_mask), returns


ADV_ESTIMATORS: dict[str, Callable[..., tuple[torch.Tensor, torch.Tensor]]] = {
    "grpo": compute_grpo_outcome_advantage,
    "rloo": compute_rloo_outcome_advantage,
    "reinforce_plus_plus": compute_reinforce_plus_plus_outcome_advantage,
    "reinforce_plus_plus_baseline": compute_reinforce_plus_plus_baseline_outcome_advantage,
    "remax": compute_remax_outcome_advantage,
    "gae": compute_gae_advantage_return,
}
"""``algorithm.adv_estimator`` name → estimator."""


def get_adv_estimator(name: str) -> Callable[..., tuple[torch.Tensor, torch.Tensor]]:
    """The estimator registered as ``name``; an unknown name raises listing the valid ones."""
    try:
        return ADV_ESTIMATORS[name]
    except KeyError:
        raise ValueError(f"unknown advantage estimator {name!r}; valid: {', '.join(ADV_ESTIMATORS)}") from None


def compute_advantage(
    name: str,
    token_level_rewards: torch.Tensor,
    response_mask: torch.Tensor,
    *,
    index: Sequence[Hashable] | np.ndarray | None = None,
    values: torch.Tensor | None = None,
    reward_baselines: torch.Tensor | None = None,
    gamma: float = 1.0,
    lam: float = 1.0,
    norm_adv_by_std: bool = True,
    eps: float = 1e-6,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run estimator ``name`` with the inputs it needs (one call site for the trainer).

    ``index`` is needed by ``grpo``, ``rloo`` and ``reinforce_plus_plus_baseline``; ``values`` by ``gae``;
    ``reward_baselines`` (the greedy responses' rewards) by ``remax``. A missing one raises naming it."""
    estimator = get_adv_estimator(name)

    def need(value: Any, what: str) -> Any:
        if value is None:
            raise ValueError(f"advantage estimator {name!r} needs {what}")
        return value

    if name == "grpo":
        return estimator(token_level_rewards, response_mask, need(index, "index (group ids)"), eps, norm_adv_by_std)
    if name in ("rloo", "reinforce_plus_plus_baseline"):
        return estimator(token_level_rewards, response_mask, need(index, "index (group ids)"))
    if name == "reinforce_plus_plus":
        return estimator(token_level_rewards, response_mask, gamma)
    if name == "remax":
        return estimator(token_level_rewards, need(reward_baselines, "reward_baselines"), response_mask)
    return estimator(token_level_rewards, need(values, "values (critic)"), response_mask, gamma, lam)


@torch.no_grad()
def compute_multi_reward_advantage(
    channel_scores: Mapping[str, torch.Tensor],
    weights: Mapping[str, float],
    response_mask: torch.Tensor,
    index: Sequence[Hashable] | np.ndarray,
    norm_adv_by_std: bool = True,
    eps: float = 1e-6,
    penalty: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Multi-reward policy optimisation (Vision-SR1 v2, arXiv 2508.19652): each reward channel ``c`` (e.g.
    ``accuracy``, ``perception``) is GRPO-normalised within the prompt's group on its own,
    ``A^c_i = (r^c_i - mean_g(r^c)) / (std_g(r^c) + eps)``, and the channels are combined with their weights,
    ``A_i = sum_c w_c * A^c_i``, broadcast over the valid tokens.

    Normalising separately keeps a low-variance channel from being drowned by a high-variance one (with a plain
    sum, perception would only matter where accuracy ties). ``weights`` names the channels used; a weight for a
    channel missing from ``channel_scores`` raises. Returns ``(advantages, returns)`` (equal).

    ``penalty`` (per response, e.g. the KL-in-reward term ``-beta * sum_t kl_t``) is added centred within the
    group, ``A_i += p_i - mean_g(p)``, but not divided by its std: it stays in reward units, scaled by its own
    coefficient, instead of being blown up to the size of a whole channel."""
    if not weights:
        raise ValueError("compute_multi_reward_advantage needs at least one channel weight")
    missing = [name for name in weights if name not in channel_scores]
    if missing:
        raise ValueError(f"reward channels {missing} have weights but no scores; scored: {sorted(channel_scores)}")
    combined = torch.zeros(response_mask.shape[0], dtype=torch.float32, device=response_mask.device)
    for name, weight in weights.items():
        scores = channel_scores[name].to(device=response_mask.device, dtype=torch.float32)
        combined = combined + float(weight) * _grpo_normalise(scores, index, norm_adv_by_std, eps)
    if penalty is not None:
        combined = combined + _grpo_normalise(penalty.to(combined), index, False, eps)
    advantages = _broadcast(combined, response_mask)
    return advantages, advantages


# --------------------------------------------------------------------------------------------- loss aggregation

LOSS_AGG_MODES = ("token-mean", "seq-mean-token-sum", "seq-mean-token-mean", "seq-mean-token-sum-norm")
_LOSS_AGG_ALIASES = {"token": "token-mean", "seq": "seq-mean-token-mean"}


def aggregate_loss(
    loss_mat: torch.Tensor,
    mask: torch.Tensor,
    mode: str,
    max_length: int | None = None,
    row_weights: torch.Tensor | None = None,
    weight_total: float | torch.Tensor | None = None,
) -> torch.Tensor:
    """Reduce a token-level loss ``(batch, len)`` to a scalar.

    - ``token-mean``: ``sum(L * m) / sum(m)``: every valid token of the batch weighs the same (DAPO);
    - ``seq-mean-token-mean``: ``mean_i(sum_t(L * m) / sum_t(m))``: every response weighs the same (GRPO paper);
    - ``seq-mean-token-sum``: ``mean_i(sum_t(L * m))``;
    - ``seq-mean-token-sum-norm``: ``mean_i(sum_t(L * m) / max_length)`` with a constant ``max_length`` (default
      ``len``, the padded response length), Dr. GRPO's length-unbiased form.

    EasyR1's ``token`` and ``seq`` are accepted for ``token-mean`` and ``seq-mean-token-mean``. Sequence modes
    average over all rows (a row without valid tokens adds 0), matching micro-batch weights ``rows / rows``.

    With per-row ``row_weights`` ``w`` the same means are weighted, over a total the caller gives (it may span
    several micro-batches and ranks): ``sum_i w_i * sum_t(L * m) / weight_total`` for ``token-mean`` (the total
    being ``sum_i w_i * sum_t(m)``), and ``sum_i w_i * s_i / weight_total`` with ``s_i`` the row's term above for
    the sequence modes (the total being ``sum_i w_i``; see :func:`loss_weight_total`). Rows of weight 0 (padding)
    drop out; weights ``(1 - h) / N1`` and ``h / N2`` on two groups of rows give ``(1 - h) L_1 + h L_2``.
    """
    mode = _LOSS_AGG_ALIASES.get(mode, mode)
    if row_weights is not None:
        if weight_total is None:
            weight_total = loss_weight_total(mask, mode, row_weights)
        return (_row_terms(loss_mat, mask, mode, max_length) * row_weights.to(loss_mat.dtype)).sum() / weight_total
    if mode == "token-mean":
        return masked_mean(loss_mat, mask)
    token_sum = masked_sum(loss_mat, mask, dim=-1)
    if mode == "seq-mean-token-sum":
        return token_sum.mean()
    if mode == "seq-mean-token-mean":
        return (token_sum / mask.to(loss_mat.dtype).sum(dim=-1).clamp(min=1.0)).mean()
    if mode == "seq-mean-token-sum-norm":
        length = loss_mat.shape[-1] if max_length is None else max_length
        if length <= 0:
            raise ValueError(f"seq-mean-token-sum-norm needs max_length > 0, got {length}")
        return (token_sum / float(length)).mean()
    valid = ", ".join((*LOSS_AGG_MODES, *_LOSS_AGG_ALIASES))
    raise ValueError(f"unknown loss_avg_mode {mode!r}; valid: {valid}")


def _row_terms(loss_mat: torch.Tensor, mask: torch.Tensor, mode: str, max_length: int | None) -> torch.Tensor:
    token_sum = masked_sum(loss_mat, mask, dim=-1)
    if mode in ("token-mean", "seq-mean-token-sum"):
        return token_sum
    if mode == "seq-mean-token-mean":
        return token_sum / mask.to(loss_mat.dtype).sum(dim=-1).clamp(min=1.0)
    if mode == "seq-mean-token-sum-norm":
        return token_sum / float(loss_mat.shape[-1] if max_length is None else max_length)
    valid = ", ".join((*LOSS_AGG_MODES, *_LOSS_AGG_ALIASES))
    raise ValueError(f"unknown loss_avg_mode {mode!r}; valid: {valid}")


def loss_weight_total(mask: torch.Tensor, mode: str, row_weights: torch.Tensor) -> torch.Tensor:
    """The denominator of the weighted :func:`aggregate_loss` over these rows: ``sum_i w_i * sum_t(m)`` for
    ``token-mean``, ``sum_i w_i`` otherwise. Summed over micro-batches and ranks, it makes the weighted mean
    exact for the whole mini-batch."""
    mode = _LOSS_AGG_ALIASES.get(mode, mode)
    weights = row_weights.to(torch.float32)
    if mode == "token-mean":
        return (weights * mask.to(torch.float32).sum(dim=-1)).sum()
    return weights.sum()


# --------------------------------------------------------------------------------------------- policy and value loss

LOSS_TYPES = ("default", "gspo", "gspo_token", "cispo", "sapo")
_LOG_RATIO_LIMIT = 20.0  # exp(±20) keeps ratios and their gradients finite (pytorch/pytorch#10729)


def compute_policy_loss(
    old_log_probs: torch.Tensor,
    log_probs: torch.Tensor,
    advantages: torch.Tensor,
    response_mask: torch.Tensor,
    clip_ratio_low: float = 0.2,
    clip_ratio_high: float = 0.3,
    clip_ratio_dual: float = 3.0,
    loss_type: str = "default",
    loss_avg_mode: str = "token-mean",
    loss_max_length: int | None = None,
    tau_positive: float = 1.0,
    tau_negative: float = 1.05,
    row_weights: torch.Tensor | None = None,
    weight_total: float | torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Policy-gradient loss (to minimise) and its metrics.

    With ``r = exp(log_probs - old_log_probs)`` and ``clip(r) = clamp(r, 1 - clip_ratio_low, 1 + clip_ratio_high)``:

    - ``default``: PPO's clipped surrogate (Schulman et al. 2017, arXiv 1707.06347) with DAPO's asymmetric
      "clip-higher" bounds (Yu et al. 2025, arXiv 2503.14476), ``L = max(-A r, -A clip(r))``, and dual clip for
      negative advantages (Ye et al. 2020, arXiv 1912.09729): ``L = min(L, -A * clip_ratio_dual)`` where
      ``A < 0``, so a huge ratio on a bad token cannot make the loss unbounded;
    - ``gspo``: GSPO (Zheng et al. 2025, arXiv 2507.18071): the same clipped objective on the sequence ratio
      ``s_i = exp(mean_t(log_probs - old_log_probs))`` (geometric mean of the token ratios, length-normalised),
      shared by all tokens of the response. GSPO's paper uses much tighter clip ranges (3e-4 / 4e-4);
    - ``gspo_token``: GSPO-token (same paper): the ratio's *value* is the sequence ratio ``s_i`` (so clipping is
      decided per sequence) but its gradient flows per token, ``r_t = sg(s_i) * exp(log_probs_t -
      sg(log_probs_t))``: ``d r_t / d log_probs_t = s_i``, where ``gspo`` spreads ``s_i / |y_i|`` over the
      response. With advantages equal over a response (GRPO) its gradient equals ``gspo``'s;
    - ``cispo``: CISPO (MiniMax-M1, arXiv 2506.13585): ``L = -A * sg(clip(r)) * log_probs``: REINFORCE with the
      clipped importance weight held constant, so every token keeps a gradient (through ``log_probs`` only);
    - ``sapo``: SAPO (Gao et al. 2025, arXiv 2511.20347): a smooth gate instead of a hard clip,
      ``L = -A * 4 / tau * sigmoid(tau * (r - 1))`` with ``tau = tau_positive`` where ``A >= 0`` and
      ``tau_negative`` where ``A < 0``. At ``r = 1`` the gate's slope is 1 (the plain policy gradient) and it
      fades smoothly as ``r`` leaves 1, faster for larger ``tau``; the clip ratios are not used. Its value at
      ``r = 1`` is ``-A * 2 / tau``, not ``-A``: only the gradient matches PPO there.

    The token losses are reduced by ``aggregate_loss(L, response_mask, loss_avg_mode, loss_max_length)``, weighted
    per row when ``row_weights`` is given (see :func:`aggregate_loss`).

    Metrics (floats, means over valid tokens): ``pg_clipfrac_higher`` = share of tokens held at the upper bound
    ``1 + clip_ratio_high`` (A > 0, r above it; for cispo: any token whose weight was clipped down to it),
    ``pg_clipfrac_lower`` = share held at ``1 - clip_ratio_low`` (A < 0, r below it; for cispo: weight clipped
    up), ``pg_clipfrac_dual`` = share bounded by the dual clip (all three 0 for ``sapo``, which clips nothing),
    ``ppo_kl`` = ``mean(old_log_probs -
    log_probs)`` (k1 estimate of KL(old || new)).
    """
    if loss_type not in LOSS_TYPES:
        raise ValueError(f"unknown loss_type {loss_type!r}; valid: {', '.join(LOSS_TYPES)}")
    if clip_ratio_dual <= 1.0:
        raise ValueError(f"clip_ratio_dual must be > 1, got {clip_ratio_dual}")
    if loss_type == "sapo" and (tau_positive <= 0 or tau_negative <= 0):
        raise ValueError(f"sapo needs tau_positive > 0 and tau_negative > 0, got {tau_positive} and {tau_negative}")
    valid = response_mask.bool()
    zeros = torch.zeros_like(log_probs)
    log_probs_valid = torch.where(valid, log_probs, zeros)
    advantages = torch.where(valid, advantages.to(log_probs.dtype), zeros)
    log_ratio = log_probs_valid - torch.where(valid, old_log_probs.to(log_probs.dtype), zeros)
    if loss_type == "gspo":
        log_ratio = masked_mean(log_ratio, response_mask, dim=-1).unsqueeze(-1).expand_as(log_ratio)
    elif loss_type == "gspo_token":
        sequence = masked_mean(log_ratio, response_mask, dim=-1).detach().unsqueeze(-1)
        log_ratio = sequence + log_probs_valid - log_probs_valid.detach()
    log_ratio = log_ratio.clamp(-_LOG_RATIO_LIMIT, _LOG_RATIO_LIMIT)
    ratio = torch.exp(log_ratio)
    low, high = 1.0 - clip_ratio_low, 1.0 + clip_ratio_high
    clipped_ratio = ratio.clamp(low, high)

    if loss_type == "cispo":
        token_loss = -advantages * clipped_ratio.detach() * log_probs_valid
        at_high, at_low = ratio > high, ratio < low
        dual = torch.zeros_like(valid)
    elif loss_type == "sapo":
        positive = advantages >= 0
        tau = torch.where(positive, torch.full_like(ratio, tau_positive), torch.full_like(ratio, tau_negative))
        token_loss = -advantages * (4.0 / tau) * torch.sigmoid(tau * (ratio - 1.0))
        at_high = at_low = dual = torch.zeros_like(valid)
    else:
        surrogate = torch.maximum(-advantages * ratio, -advantages * clipped_ratio)
        dual_bound = -advantages * clip_ratio_dual
        negative = advantages < 0
        token_loss = torch.where(negative, torch.minimum(surrogate, dual_bound), surrogate)
        at_high = (advantages > 0) & (ratio > high)
        at_low = negative & (ratio < low)
        dual = negative & (ratio > clip_ratio_dual)

    loss = aggregate_loss(token_loss, response_mask, loss_avg_mode, loss_max_length, row_weights, weight_total)
    with torch.no_grad():
        metrics = {
            "pg_clipfrac_higher": float(masked_mean(at_high.float(), response_mask)),
            "pg_clipfrac_lower": float(masked_mean(at_low.float(), response_mask)),
            "pg_clipfrac_dual": float(masked_mean(dual.float(), response_mask)),
            "ppo_kl": float(masked_mean(-(log_probs_valid - torch.where(valid, old_log_probs, zeros)), response_mask)),
        }
    return loss, metrics


def compute_value_loss(
    vpreds: torch.Tensor,
    returns: torch.Tensor,
    values: torch.Tensor,
    response_mask: torch.Tensor,
    cliprange_value: float,
    loss_avg_mode: str = "token-mean",
) -> tuple[torch.Tensor, float]:
    """Clipped value loss (PPO, arXiv 1707.06347): ``0.5 * max((V - R)^2, (clip(V, V_old ± c) - R)^2)``,
    aggregated like the policy loss. Returns ``(loss, clipfrac)``, ``clipfrac`` = share of valid tokens where
    the clipped term is the larger one."""
    clipped = values + (vpreds - values).clamp(-cliprange_value, cliprange_value)
    loss_unclipped = (vpreds - returns) ** 2
    loss_clipped = (clipped - returns) ** 2
    loss = 0.5 * aggregate_loss(torch.maximum(loss_unclipped, loss_clipped), response_mask, loss_avg_mode)
    clipfrac = float(masked_mean((loss_clipped > loss_unclipped).float(), response_mask))
    return loss, clipfrac


# --------------------------------------------------------------------------------------------- KL

KL_PENALTIES = ("kl", "abs", "mse", "low_var_kl", "full")


def kl_from_logits(logits: torch.Tensor, ref_logits: torch.Tensor) -> torch.Tensor:
    """Exact ``KL(pi || pi_ref) = sum_v pi_v (log pi_v - log pi_ref_v)`` per position from full logits
    ``(..., vocab)``; the ``full`` KL penalty."""
    log_p = torch.log_softmax(logits.float(), dim=-1)
    log_q = torch.log_softmax(ref_logits.float(), dim=-1)
    return F.kl_div(log_q, log_p, log_target=True, reduction="none").sum(dim=-1)


def compute_kl(log_probs: torch.Tensor, ref_log_probs: torch.Tensor, kl_penalty: str) -> torch.Tensor:
    """Per-token estimate of ``KL(pi || pi_ref)`` from the sampled tokens' log-probs (Schulman 2020,
    "Approximating KL divergence"), with ``d = log_probs - ref_log_probs``:

    - ``kl`` (k1): ``d``; unbiased, high variance, can be negative;
    - ``abs``: ``|d|``;
    - ``mse`` (k2): ``0.5 * d^2``;
    - ``low_var_kl`` (k3): ``exp(-d) - 1 + d`` (>= 0, unbiased), ``-d`` clamped to [-20, 20] before ``exp`` and
      the result to [-10, 10];
    - ``full``: exact KL over the vocabulary; needs full log-distributions ``(batch, len, vocab)`` here (or
      logits through ``kl_from_logits``); gathered ``(batch, len)`` log-probs raise.
    """
    log_probs, ref_log_probs = log_probs.float(), ref_log_probs.float()
    if kl_penalty == "full":
        if log_probs.dim() < 3:
            raise ValueError(
                "kl_penalty='full' needs full-distribution log-probs of shape (batch, len, vocab); the sampled "
                "tokens' log-probs only support kl, abs, mse, low_var_kl (or use kl_from_logits on logits)"
            )
        return F.kl_div(ref_log_probs, log_probs, log_target=True, reduction="none").sum(dim=-1)
    diff = log_probs - ref_log_probs
    if kl_penalty == "kl":
        return diff
    if kl_penalty == "abs":
        return diff.abs()
    if kl_penalty == "mse":
        return 0.5 * diff.square()
    if kl_penalty == "low_var_kl":
        neg = (-diff).clamp(-20.0, 20.0)
        return (neg.exp() - neg - 1.0).clamp(-10.0, 10.0)
    raise ValueError(f"unknown kl_penalty {kl_penalty!r}; valid: {', '.join(KL_PENALTIES)}")


class FixedKLController:
    """A constant KL coefficient."""

    def __init__(self, kl_coef: float) -> None:
        self.kl_coef = float(kl_coef)

    def update(self, current_kl: float, n_steps: int) -> None:
        """Nothing to adapt."""


class AdaptiveKLController:
    """Proportional KL controller (Ziegler et al. 2019, arXiv 1909.08593, after PPO's adaptive penalty):
    ``e = clip(KL / target - 1, -0.2, 0.2)`` and ``beta <- beta * (1 + e * n_steps / horizon)``."""

    def __init__(self, init_kl_coef: float, target_kl: float, horizon: float) -> None:
        if target_kl <= 0 or horizon <= 0:
            raise ValueError(f"adaptive KL needs target_kl > 0 and horizon > 0, got {target_kl} and {horizon}")
        self.kl_coef = float(init_kl_coef)
        self.target = float(target_kl)
        self.horizon = float(horizon)

    def update(self, current_kl: float, n_steps: int) -> None:
        error = min(max(current_kl / self.target - 1.0, -0.2), 0.2)
        self.kl_coef *= 1.0 + error * n_steps / self.horizon


def get_kl_controller(
    kl_type: str, kl_coef: float, kl_target: float = 0.1, kl_horizon: float = 10000.0
) -> FixedKLController | AdaptiveKLController:
    """``fixed`` or ``adaptive`` controller for the KL penalty inside the reward (``algorithm.kl_type``)."""
    if kl_type == "fixed":
        return FixedKLController(kl_coef)
    if kl_type == "adaptive":
        return AdaptiveKLController(kl_coef, kl_target, kl_horizon)
    raise ValueError(f"unknown kl_type {kl_type!r}; valid: fixed, adaptive")


def apply_kl_penalty(
    token_level_scores: torch.Tensor,
    log_probs: torch.Tensor,
    ref_log_probs: torch.Tensor,
    response_mask: torch.Tensor,
    kl_ctrl: FixedKLController | AdaptiveKLController,
    kl_penalty: str = "kl",
) -> tuple[torch.Tensor, dict[str, float]]:
    """KL in the reward (InstructGPT-style): ``rewards_t = scores_t - beta * KL_t`` on valid tokens, then the
    controller is updated with the batch KL (mean over responses of the per-response token mean) and
    ``n_steps = batch size``. Metrics: ``kl`` (that batch KL) and ``kl_coef`` (the ``beta`` applied here, before
    the update)."""
    kld = torch.where(response_mask.bool(), compute_kl(log_probs, ref_log_probs, kl_penalty), 0.0)
    beta = kl_ctrl.kl_coef
    rewards = token_level_scores - beta * kld
    current_kl = float(masked_mean(kld, response_mask, dim=-1).mean())
    kl_ctrl.update(current_kl, n_steps=token_level_scores.shape[0])
    return rewards, {"kl": current_kl, "kl_coef": beta}
