"""Advantage estimators, losses, aggregation and KL, checked against numbers worked by hand (in the comments)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from verl.trainer import core_algos as ca

PAD = 123.0  # garbage on padded positions: every output must ignore it


def _close(actual: torch.Tensor | float, expected: list | float, atol: float = 1e-5) -> None:
    actual = torch.as_tensor(actual, dtype=torch.float64)
    torch.testing.assert_close(actual, torch.as_tensor(expected, dtype=torch.float64), atol=atol, rtol=0)


def _outcome(scores: list[float], lengths: list[int], width: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    """Token-level rewards with each score on its response's last valid token; garbage on padding."""
    mask = torch.zeros(len(scores), width)
    rewards = torch.full((len(scores), width), PAD)
    for i, (score, length) in enumerate(zip(scores, lengths)):
        mask[i, :length] = 1
        rewards[i, :length] = 0
        rewards[i, length - 1] = score
    return rewards * mask, mask  # outcome estimators sum rewards, so padding must hold 0 in the rewards


# ------------------------------------------------------------------------------------------------ masked helpers


def test_masked_helpers_ignore_padding_and_empty_masks():
    values = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, float("nan")]])
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    _close(ca.masked_mean(values, mask), 3.0)  # 15 / 5
    _close(ca.masked_mean(values, mask, dim=-1), [2.0, 4.5])
    # deviations -2,-1,0,1,2 → squares sum 10 → unbiased 10/4
    _close(ca.masked_var(values, mask), 2.5)
    _close(ca.masked_var(values, mask, unbiased=False), 2.0)
    whitened = ca.masked_whiten(values, mask)
    _close(whitened, [[-2 / math.sqrt(2.5), -1 / math.sqrt(2.5), 0.0], [1 / math.sqrt(2.5), 2 / math.sqrt(2.5), 0.0]])
    assert ca.masked_mean(values, torch.zeros_like(mask)).item() == 0.0
    assert ca.masked_var(values, torch.tensor([[1, 0, 0], [0, 0, 0]])).item() == 0.0  # one entry: no variance


def test_entropy_from_logits_is_stable():
    _close(ca.entropy_from_logits(torch.zeros(4)), math.log(4))
    _close(ca.entropy_from_logits(torch.log(torch.tensor([0.5, 0.5]))), math.log(2))
    huge = ca.entropy_from_logits(torch.tensor([[1000.0, 0.0, -1000.0]]))
    assert torch.isfinite(huge).all()
    _close(huge, [0.0])
    # p = [0.7, 0.2, 0.1] → H = -(0.7 ln 0.7 + 0.2 ln 0.2 + 0.1 ln 0.1) = 0.801819
    _close(ca.entropy_from_logits(torch.log(torch.tensor([0.7, 0.2, 0.1])) + 5.0), 0.801819)


# ------------------------------------------------------------------------------------------------ estimators

INDEX = np.array(["a", "a", "a", "b", "b", "c"], dtype=object)


def test_grpo_hand_worked():
    # group a: [1, 0, 0]: mean 1/3, unbiased std sqrt(((2/3)^2 + 2 (1/3)^2) / 2) = sqrt(1/3) = 0.577350
    #   A = (2/3) / 0.577350 = 1.154701, (-1/3) / 0.577350 = -0.577350
    # group b: [0.5, 0.5] equal → 0; group c: one response → 0
    rewards, mask = _outcome([1, 0, 0, 0.5, 0.5, 2.0], [2, 3, 1, 4, 2, 3])
    adv, ret = ca.compute_grpo_outcome_advantage(rewards, mask, INDEX, eps=0.0)
    expected = torch.tensor([1.154701, -0.577350, -0.577350, 0, 0, 0]).unsqueeze(-1) * mask
    _close(adv, expected)
    assert torch.equal(adv, ret)


def test_dr_grpo_does_not_divide_by_std():
    # group a: r - mean = [2/3, -1/3, -1/3]
    rewards, mask = _outcome([1, 0, 0, 0.5, 0.5, 2.0], [2, 3, 1, 4, 2, 3])
    adv, _ = ca.compute_grpo_outcome_advantage(rewards, mask, INDEX, norm_adv_by_std=False)
    _close(adv[:, 0], [2 / 3, -1 / 3, -1 / 3, 0, 0, 0])


def test_rloo_hand_worked():
    # group a: A_1 = 1 - (0 + 0)/2 = 1, A_2 = 0 - (1 + 0)/2 = -0.5, A_3 = -0.5; b equal → 0; c alone → 0
    rewards, mask = _outcome([1, 0, 0, 0.5, 0.5, 2.0], [2, 3, 1, 4, 2, 3])
    adv, _ = ca.compute_rloo_outcome_advantage(rewards, mask, INDEX)
    _close(adv, torch.tensor([1.0, -0.5, -0.5, 0, 0, 0]).unsqueeze(-1) * mask)


def test_reinforce_plus_plus_hand_worked():
    # gamma 0.5. row 0: rewards [0, 0, 1 | pad] → returns [0.25, 0.5, 1, 0]
    #            row 1: rewards [0, 2 | pad pad] → returns [1, 2, 0, 0]
    # whiten over {0.25, 0.5, 1, 1, 2}: mean 0.95, squared deviations sum 1.8, unbiased var 0.45, std 0.670820
    rewards = torch.tensor([[0.0, 0.0, 1.0, PAD], [0.0, 2.0, PAD, PAD]])
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]])
    adv, ret = ca.compute_reinforce_plus_plus_outcome_advantage(rewards, mask, gamma=0.5)
    _close(ret, [[0.25, 0.5, 1.0, 0.0], [1.0, 2.0, 0.0, 0.0]])
    std = math.sqrt(0.45)
    _close(adv, [[-0.7 / std, -0.45 / std, 0.05 / std, 0.0], [0.05 / std, 1.05 / std, 0.0, 0.0]])


def test_reinforce_plus_plus_baseline_hand_worked():
    # group a: [1, 0, 0] - mean 1/3 = [2/3, -1/3, -1/3]; lengths 2, 1, 1 → tokens 2/3, 2/3, -1/3, -1/3
    # batch mean 1/6, deviations ±1/2, unbiased var 1/3 → A = ±0.5 / sqrt(1/3) = ±0.866025
    rewards, mask = _outcome([1, 0, 0], [2, 1, 1], width=3)
    adv, _ = ca.compute_reinforce_plus_plus_baseline_outcome_advantage(rewards, mask, np.array(["a"] * 3))
    s = 0.866025
    _close(adv, [[s, s, 0], [-s, 0, 0], [-s, 0, 0]])


def test_remax_hand_worked():
    # r - greedy baseline: [1 - 0.5, 0 - 0.5] broadcast over the valid tokens
    rewards, mask = _outcome([1.0, 0.0], [2, 3], width=3)
    adv, ret = ca.compute_remax_outcome_advantage(rewards, torch.tensor([0.5, 0.5]), mask)
    _close(adv, [[0.5, 0.5, 0.0], [-0.5, -0.5, -0.5]])
    assert torch.equal(adv, ret)


def test_gae_hand_worked():
    # gamma 0.9, lam 0.8, V = [0.2, 0.4, 0.6], reward 1 on the last valid token, padding after it
    # t=2: delta = 1 - 0.6 = 0.4                          A2 = 0.4
    # t=1: delta = 0.9*0.6 - 0.4 = 0.14                   A1 = 0.14 + 0.72*0.4 = 0.428
    # t=0: delta = 0.9*0.4 - 0.2 = 0.16                   A0 = 0.16 + 0.72*0.428 = 0.46816
    # returns = A + V = [0.66816, 0.828, 1.0]
    rewards = torch.tensor([[0.0, 0.0, 1.0, PAD]])
    values = torch.tensor([[0.2, 0.4, 0.6, PAD]])
    mask = torch.tensor([[1, 1, 1, 0]])
    adv, ret = ca.compute_gae_advantage_return(rewards, values, mask, gamma=0.9, lam=0.8)
    _close(ret, [[0.66816, 0.828, 1.0, 0.0]])
    raw = [0.46816, 0.428, 0.4]
    mean = sum(raw) / 3
    std = math.sqrt(sum((x - mean) ** 2 for x in raw) / 2)
    _close(adv, [[(x - mean) / std for x in raw] + [0.0]])


def test_gae_gamma_lam_one_is_reward_to_go_minus_value():
    # gamma = lam = 1: A_t = sum of future rewards - V_t = 1 - V_t; returns = 1 everywhere valid
    rewards = torch.tensor([[0.0, 0.0, 1.0], [0.0, 1.0, PAD]])
    values = torch.tensor([[0.1, 0.2, 0.3], [0.5, 0.5, PAD]])
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    _, ret = ca.compute_gae_advantage_return(rewards, values, mask, gamma=1.0, lam=1.0)
    _close(ret, [[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])


def test_registry_and_dispatch():
    assert set(ca.ADV_ESTIMATORS) == {"grpo", "rloo", "reinforce_plus_plus", "reinforce_plus_plus_baseline",
                                      "remax", "gae"}  # fmt: skip
    with pytest.raises(ValueError, match="valid: grpo, rloo"):
        ca.get_adv_estimator("ppo")
    rewards, mask = _outcome([1, 0, 0, 0.5, 0.5, 2.0], [2, 3, 1, 4, 2, 3])
    direct, _ = ca.compute_grpo_outcome_advantage(rewards, mask, INDEX)
    via, _ = ca.compute_advantage("grpo", rewards, mask, index=INDEX)
    assert torch.equal(direct, via)
    with pytest.raises(ValueError, match="needs index"):
        ca.compute_advantage("rloo", rewards, mask)
    with pytest.raises(ValueError, match="needs values"):
        ca.compute_advantage("gae", rewards, mask)
    with pytest.raises(ValueError, match="needs reward_baselines"):
        ca.compute_advantage("remax", rewards, mask)
    for name in ca.ADV_ESTIMATORS:
        adv, ret = ca.compute_advantage(name, rewards, mask, index=INDEX, values=torch.zeros_like(rewards),
                                        reward_baselines=torch.zeros(6), gamma=0.9, lam=0.95)  # fmt: skip
        assert adv.shape == ret.shape == rewards.shape
        assert torch.isfinite(adv).all() and torch.isfinite(ret).all()
        assert (adv[mask == 0] == 0).all(), name


@pytest.mark.parametrize("seed", range(5))
def test_group_estimator_properties(seed):
    gen = torch.Generator().manual_seed(seed)
    sizes = [1, 2, 3, 8, 5]
    index = np.array([f"g{g}" for g, n in enumerate(sizes) for _ in range(n)], dtype=object)
    perm = torch.randperm(len(index), generator=gen)
    index = index[perm.numpy()]  # groups interleaved, as after shuffling
    scores = torch.randint(0, 3, (len(index),), generator=gen).float()
    lengths = torch.randint(1, 6, (len(index),), generator=gen).tolist()
    rewards, mask = _outcome(scores.tolist(), lengths, width=6)
    for name in ("grpo", "rloo"):
        adv, _ = ca.compute_advantage(name, rewards, mask, index=index)
        assert torch.isfinite(adv).all()
        per_seq = adv[:, 0]
        for group in set(index):
            rows = torch.tensor(index == group)
            assert abs(float(per_seq[rows].sum())) < 1e-4, (name, group)  # advantages sum to 0 in each group
            if rows.sum() == 1 or scores[rows].unique().numel() == 1:
                assert (per_seq[rows] == 0).all(), (name, group)


def test_equal_rewards_and_singletons_give_zero_not_nan():
    rewards, mask = _outcome([1.0, 1.0, 1.0, 0.0], [1, 2, 3, 2])
    index = np.array(["a", "a", "a", "b"], dtype=object)
    for name in ("grpo", "rloo", "reinforce_plus_plus_baseline"):
        adv, _ = ca.compute_advantage(name, rewards, mask, index=index)
        assert torch.equal(adv, torch.zeros_like(adv)), name
    adv, _ = ca.compute_grpo_outcome_advantage(rewards, mask, index, eps=0.0)
    assert torch.equal(adv, torch.zeros_like(adv))
    # 0.1 three times: the float mean is 0.10000000000000002, yet the group is constant → exactly 0, even eps=0
    noisy, mask3 = _outcome([0.1, 0.1, 0.1], [1, 1, 1], width=1)
    adv, _ = ca.compute_grpo_outcome_advantage(noisy, mask3, ["q"] * 3, eps=0.0)
    assert torch.equal(adv, torch.zeros_like(adv))


def test_integer_group_ids_work():
    rewards, mask = _outcome([1.0, 0.0], [1, 1], width=1)
    adv, _ = ca.compute_grpo_outcome_advantage(rewards, mask, np.array([7, 7]), eps=0.0)
    _close(adv[:, 0], [0.5 / math.sqrt(0.5), -0.5 / math.sqrt(0.5)])  # mean 0.5, unbiased std sqrt(0.5)


def test_multi_reward_normalises_each_channel_in_its_group():
    # one group of 4; accuracy [1, 0, 0, 1], perception [1, 1, 0, 0]: each has mean 0.5, unbiased std
    # sqrt(4 * 0.25 / 3) = 0.577350, so each channel's advantages are ±0.866025.
    # weights accuracy 1, perception 0.5: [0.866 + 0.433, -0.866 + 0.433, -0.866 - 0.433, 0.866 - 0.433]
    mask = torch.tensor([[1, 1, 0], [1, 0, 0], [1, 1, 1], [1, 1, 0]])
    index = np.array(["q"] * 4, dtype=object)
    channels = {"accuracy": torch.tensor([1.0, 0.0, 0.0, 1.0]), "perception": torch.tensor([1.0, 1.0, 0.0, 0.0])}
    adv, ret = ca.compute_multi_reward_advantage(channels, {"accuracy": 1.0, "perception": 0.5}, mask, index, eps=0.0)
    _close(adv, torch.tensor([1.299038, -0.433013, -1.299038, 0.433013]).unsqueeze(-1) * mask)
    assert torch.equal(adv, ret)
    # the v1 sum would give GRPO([2, 1, 0, 1]) = [1.2247, 0, -1.2247, 0]: a different signal
    summed, _ = ca.compute_grpo_outcome_advantage(torch.tensor([[2.0], [1.0], [0.0], [1.0]]), torch.ones(4, 1), index)
    assert not torch.allclose(summed[:, 0], adv[:, 0])
    # a constant channel contributes nothing; a singleton group gets 0
    flat = ca.compute_multi_reward_advantage({"accuracy": torch.ones(4)}, {"accuracy": 1.0}, mask, index)[0]
    assert torch.equal(flat, torch.zeros_like(flat))
    with pytest.raises(ValueError, match="no scores"):
        ca.compute_multi_reward_advantage(channels, {"format": 1.0}, mask, index)
    with pytest.raises(ValueError, match="at least one"):
        ca.compute_multi_reward_advantage(channels, {}, mask, index)


def test_multi_reward_dr_grpo_variant():
    # norm_adv_by_std=False: accuracy [1, 0] → [0.5, -0.5]; perception [0, 0] → 0; weight 2 → [1, -1]
    mask = torch.ones(2, 2)
    adv, _ = ca.compute_multi_reward_advantage(
        {"accuracy": torch.tensor([1.0, 0.0]), "perception": torch.zeros(2)},
        {"accuracy": 2.0, "perception": 1.0},
        mask,
        ["u", "u"],
        norm_adv_by_std=False,
    )
    _close(adv, [[1.0, 1.0], [-1.0, -1.0]])


def test_multi_reward_keeps_the_kl_penalty_of_the_reward():
    # KL in the reward: the sequence penalties -beta * sum_t kl are [-0.2, 0.0, -0.1, -0.1] (group mean -0.1);
    # they are added centred and in reward units: [-0.1, +0.1, 0, 0] on top of the channel advantages of the
    # test above (accuracy [1, 0, 0, 1] alone: ±0.866025).
    mask = torch.ones(4, 2)
    index = np.array(["q"] * 4, dtype=object)
    channels = {"accuracy": torch.tensor([1.0, 0.0, 0.0, 1.0])}
    penalty = torch.tensor([-0.2, 0.0, -0.1, -0.1])
    adv, _ = ca.compute_multi_reward_advantage(channels, {"accuracy": 1.0}, mask, index, eps=0.0, penalty=penalty)
    _close(adv[:, 0], torch.tensor([0.866025 - 0.1, -0.866025 + 0.1, -0.866025, 0.866025]))
    without, _ = ca.compute_multi_reward_advantage(channels, {"accuracy": 1.0}, mask, index, eps=0.0)
    assert not torch.allclose(adv, without)


def test_weighted_aggregation_by_hand():
    # rows: token losses [1, 2 | -], [3 | - -], [4, 4, 4]; masks 2, 1, 3 tokens; weights 0.5, 0, 0.25
    loss = torch.tensor([[1.0, 2.0, 9.0], [3.0, 9.0, 9.0], [4.0, 4.0, 4.0]])
    mask = torch.tensor([[1, 1, 0], [1, 0, 0], [1, 1, 1]])
    w = torch.tensor([0.5, 0.0, 0.25])
    # token-mean: (0.5 * 3 + 0.25 * 12) / (0.5 * 2 + 0.25 * 3) = 4.5 / 1.75
    assert float(ca.loss_weight_total(mask, "token-mean", w)) == pytest.approx(1.75)
    assert float(ca.aggregate_loss(loss, mask, "token-mean", row_weights=w)) == pytest.approx(4.5 / 1.75)
    # seq-mean-token-mean: (0.5 * 1.5 + 0.25 * 4) / 0.75
    assert float(ca.aggregate_loss(loss, mask, "seq-mean-token-mean", row_weights=w)) == pytest.approx(1.75 / 0.75)
    # an explicit total (several micro-batches or ranks share one)
    assert float(ca.aggregate_loss(loss, mask, "token", row_weights=w, weight_total=2.0)) == pytest.approx(2.25)
    # weights 1 are the plain aggregation
    ones = torch.ones(3)
    for mode in ca.LOSS_AGG_MODES:
        _close(ca.aggregate_loss(loss, mask, mode, row_weights=ones), ca.aggregate_loss(loss, mask, mode))


# ------------------------------------------------------------------------------------------------ aggregation


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("token-mean", 3.0),  # (1+2+3+4+5) / 5
        ("token", 3.0),
        ("seq-mean-token-mean", 3.25),  # (6/3 + 9/2) / 2
        ("seq", 3.25),
        ("seq-mean-token-sum", 7.5),  # (6 + 9) / 2
        ("seq-mean-token-sum-norm", 2.5),  # (6/3 + 9/3) / 2 with max_length = padded length 3
    ],
)
def test_aggregate_loss_modes(mode, expected):
    loss = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, float("nan")]])
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    _close(ca.aggregate_loss(loss, mask, mode), expected)


def test_aggregate_loss_norm_constant_and_errors():
    loss = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 0.0]])
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    _close(ca.aggregate_loss(loss, mask, "seq-mean-token-sum-norm", max_length=5), 1.5)  # (6/5 + 9/5) / 2
    with pytest.raises(ValueError, match="token-mean, seq-mean-token-sum"):
        ca.aggregate_loss(loss, mask, "mean")


# ------------------------------------------------------------------------------------------------ policy loss

# Five valid tokens (clip low 0.2 → floor 0.8, clip high 0.3 → ceiling 1.3, dual clip 3):
#   t1: A=+1, r=1.5 → min(1.5, 1.3) = 1.3 → loss -1.3   (held at the ceiling: clipfrac_higher)
#   t2: A=+1, r=0.5 → min(0.5, 0.8) = 0.5 → loss -0.5   (unclipped)
#   t3: A=-1, r=0.5 → max(0.5, 0.8) = 0.8 → loss  0.8   (held at the floor: clipfrac_lower)
#   t4: A=-1, r=4.0 → max(4, 1.3) = 4 → min(4, 3) → 3    (dual clip)
#   t5: A=-1, r=1.0 → loss 1.0
# rows: [t1, t2, t3], [t4, t5, pad]
RATIOS = [[1.5, 0.5, 0.5], [4.0, 1.0, 50.0]]
ADVANTAGES = [[1.0, 1.0, -1.0], [-1.0, -1.0, 7.0]]
MASK = [[1, 1, 1], [1, 1, 0]]


def _policy_inputs(log_probs: list[list[float]] | None = None):
    log_probs = torch.tensor(log_probs if log_probs is not None else [[0.0] * 3] * 2, requires_grad=True)
    old = (log_probs - torch.log(torch.tensor(RATIOS))).detach().requires_grad_(True)
    return old, log_probs, torch.tensor(ADVANTAGES), torch.tensor(MASK)


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("token-mean", 0.6),  # (-1.3 - 0.5 + 0.8 + 3 + 1) / 5
        ("seq-mean-token-mean", (-1.0 / 3 + 2.0) / 2),  # row means -1/3 and 4/2
        ("seq-mean-token-sum", 1.5),  # (-1 + 4) / 2
        ("seq-mean-token-sum-norm", (-1.0 / 3 + 4.0 / 3) / 2),
    ],
)
def test_ppo_loss_hand_worked(mode, expected):
    old, new, adv, mask = _policy_inputs()
    loss, metrics = ca.compute_policy_loss(old, new, adv, mask, 0.2, 0.3, 3.0, "default", mode)
    _close(loss, expected)
    assert metrics["pg_clipfrac_higher"] == pytest.approx(0.2)
    assert metrics["pg_clipfrac_lower"] == pytest.approx(0.2)
    assert metrics["pg_clipfrac_dual"] == pytest.approx(0.2)
    # ppo_kl = mean(old - new) = -(ln 1.5 + ln 0.5 + ln 0.5 + ln 4 + 0) / 5 = -ln(1.5) / 5
    assert metrics["ppo_kl"] == pytest.approx(-math.log(1.5) / 5, abs=1e-6)
    assert all(isinstance(v, float) for v in metrics.values())


def test_ppo_gradient_stops_on_clipped_tokens():
    old, new, adv, mask = _policy_inputs()
    loss, _ = ca.compute_policy_loss(old, new, adv, mask, 0.2, 0.3, 3.0, "default", "token-mean")
    loss.backward()
    # d(-A r)/d log p = -A r, divided by 5 tokens; t1, t3, t4 are clipped (no gradient), t2: -0.5/5, t5: 1/5
    _close(new.grad, [[0.0, -0.1, 0.0], [0.0, 0.2, 0.0]])


def test_gspo_uses_the_sequence_ratio():
    # row 0: mean log ratio (ln 1.5 + 2 ln 0.5) / 3 = -0.326943 → s0 = 0.721125; A = +1 on every token
    #        min(s0, clip(s0) = 0.8) = 0.721125 → loss -0.721125 per token
    # row 1: mean (ln 4 + 0) / 2 = ln 2 → s1 = 2; A = -1: max(2, 1.3) = 2, below the dual bound 3 → loss 2
    old, new, _, mask = _policy_inputs()
    adv = torch.tensor([[1.0, 1.0, 1.0], [-1.0, -1.0, 0.0]])
    loss, metrics = ca.compute_policy_loss(old, new, adv, mask, 0.2, 0.3, 3.0, "gspo", "token-mean")
    s0 = math.exp((math.log(1.5) + 2 * math.log(0.5)) / 3)
    _close(loss, (3 * -s0 + 2 * 2.0) / 5)
    assert metrics["pg_clipfrac_higher"] == metrics["pg_clipfrac_lower"] == metrics["pg_clipfrac_dual"] == 0.0
    loss.backward()
    # row 0's loss is 3 * -s0 / 5 and ds0/dlog p_t = s0 / 3 for each of its tokens, so every token gets the
    # same gradient -s0 / 5: the sequence shares it
    _close(new.grad[0], [-s0 / 5] * 3)
    loss2, _ = ca.compute_policy_loss(old, new, adv, mask, 0.2, 0.3, 3.0, "gspo", "seq-mean-token-mean")
    _close(loss2, (-s0 + 2.0) / 2)


def test_cispo_hand_worked_and_gradient_only_through_log_probs():
    # loss_t = -A * sg(clip(r)) * log p with log p = [-1, -2, -1 | -0.5, -1]:
    #   t1: -1 * 1.3 * -1 = 1.3; t2: -1 * 0.8 * -2 = 1.6; t3: 1 * 0.8 * -1 = -0.8; t4: 1 * 1.3 * -0.5 = -0.65;
    #   t5: 1 * 1 * -1 = -1 → token mean 0.45 / 5 = 0.09
    old, new, adv, mask = _policy_inputs([[-1.0, -2.0, -1.0], [-0.5, -1.0, -3.0]])
    loss, metrics = ca.compute_policy_loss(old, new, adv, mask, 0.2, 0.3, 3.0, "cispo", "token-mean")
    _close(loss, 0.09)
    assert metrics["pg_clipfrac_higher"] == pytest.approx(0.4)  # r = 1.5 and 4 above 1.3
    assert metrics["pg_clipfrac_lower"] == pytest.approx(0.4)  # r = 0.5 twice below 0.8
    loss.backward()
    # d/d log p = -A * clip(r) / 5, even where the weight was clipped; nothing reaches old_log_probs
    _close(new.grad, [[-0.26, -0.16, 0.16], [0.26, 0.2, 0.0]])
    assert old.grad is None or torch.equal(old.grad, torch.zeros_like(old.grad))


def test_gspo_token_takes_the_sequence_ratio_value_with_per_token_gradients():
    # s0 = exp(mean(ln 1.5, ln 0.5, ln 0.5)) = 0.721125 as for gspo; row 1's sequence ratio is exp(ln 4 / 2) = 2.
    # A = [1, 2, 1 | 1, 1]: row 0 is inside the clip (0.72 < 0.8 but A > 0 keeps the unclipped -A s0), so its
    # losses are -A_t s0; row 1 is above 1 + 0.3 with A > 0: held at -1.3 on both tokens, no gradient, even on
    # the token whose own ratio is 1. Token mean: (-4 s0 - 2.6) / 5
    old, new, _, mask = _policy_inputs()
    adv = torch.tensor([[1.0, 2.0, 1.0], [1.0, 1.0, 0.0]])
    loss, metrics = ca.compute_policy_loss(old, new, adv, mask, 0.2, 0.3, 3.0, "gspo_token", "token-mean")
    s0 = math.exp((math.log(1.5) + 2 * math.log(0.5)) / 3)
    _close(loss, (-4 * s0 - 2.6) / 5)
    assert metrics["pg_clipfrac_higher"] == pytest.approx(0.4)
    loss.backward()
    # d(-A_t sg(s0) exp(lp_t - sg(lp_t))) / d lp_t = -A_t s0, over 5 tokens; clipped row 1 gets nothing
    _close(new.grad, [[-s0 / 5, -2 * s0 / 5, -s0 / 5], [0.0, 0.0, 0.0]])
    # gspo has the same value but spreads row 0's gradient evenly: each token gets -(1 + 2 + 1) s0 / 3 / 5
    new_gspo = new.detach().clone().requires_grad_(True)
    loss_gspo, _ = ca.compute_policy_loss(old, new_gspo, adv, mask, 0.2, 0.3, 3.0, "gspo", "token-mean")
    _close(loss_gspo, float(loss.detach()))
    loss_gspo.backward()
    _close(new_gspo.grad[0], [-4 * s0 / 15] * 3)


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def test_sapo_hand_worked():
    # L_t = -A * 4 / tau * sigmoid(tau * (r - 1)), tau = 1 where A >= 0, 2 where A < 0 (no clipping at all):
    #   t1 (r 1.5, A 1):  -4 sig(0.5)        t2 (r 0.5, A 1): -4 sig(-0.5)   → together -4 (sig(x) + sig(-x) = 1)
    #   t3 (r 0.5, A -1): 2 sig(-1) = 0.537883   t4 (r 4, A -1): 2 sig(6) = 1.995055   t5 (r 1, A -1): 2 sig(0) = 1
    #   token mean: (-4 + 0.537883 + 1.995055 + 1) / 5 = -0.093412
    old, new, adv, mask = _policy_inputs()
    loss, metrics = ca.compute_policy_loss(
        old, new, adv, mask, 0.2, 0.3, 3.0, "sapo", "token-mean", tau_positive=1.0, tau_negative=2.0
    )
    _close(loss, -0.0934125)
    assert metrics["pg_clipfrac_higher"] == metrics["pg_clipfrac_lower"] == metrics["pg_clipfrac_dual"] == 0.0
    loss.backward()

    # dL_t/d lp_t = -A * 4 * sig'(tau (r - 1)) * r (sig' = s (1 - s)), over 5 tokens; every token has a gradient,
    # the far-off t4 (r = 4) only a faint one
    def slope(x: float) -> float:
        return _sigmoid(x) * (1 - _sigmoid(x))

    expected = [
        [-4 * slope(0.5) * 1.5 / 5, -4 * slope(-0.5) * 0.5 / 5, 4 * slope(-1.0) * 0.5 / 5],
        [4 * slope(6.0) * 4 / 5, 4 * slope(0.0) * 1 / 5, 0.0],
    ]
    _close(new.grad, expected)
    _close(new.grad, [[-0.282004, -0.094001, 0.078645], [0.007893, 0.2, 0.0]])


def test_sapo_defaults_and_on_policy_gradient():
    # EasyR1's defaults tau_positive 1.0, tau_negative 1.05. At r = 1 the gate's slope is 1, so the gradient is
    # the plain policy gradient -A / n_tokens while the value is -A * 2 / tau.
    log_probs = torch.tensor([[-1.0, -2.0]], requires_grad=True)
    adv = torch.tensor([[1.0, -1.0]])
    loss, _ = ca.compute_policy_loss(log_probs.detach(), log_probs, adv, torch.ones(1, 2), loss_type="sapo")
    _close(loss, (-2.0 / 1.0 + 2.0 / 1.05) / 2)
    loss.backward()
    _close(log_probs.grad, [[-0.5, 0.5]])
    with pytest.raises(ValueError, match="tau_positive > 0"):
        ca.compute_policy_loss(log_probs, log_probs, adv, torch.ones(1, 2), loss_type="sapo", tau_negative=0.0)


@pytest.mark.parametrize("loss_type", ca.LOSS_TYPES)
def test_ratio_one_clips_nothing(loss_type):
    gen = torch.Generator().manual_seed(0)
    log_probs = -torch.rand(4, 6, generator=gen)
    adv = torch.randn(4, 6, generator=gen)
    mask = (torch.rand(4, 6, generator=gen) > 0.3).int()
    loss, metrics = ca.compute_policy_loss(log_probs, log_probs.clone(), adv, mask, 0.2, 0.3, 3.0, loss_type)
    assert torch.isfinite(loss)
    assert metrics["pg_clipfrac_higher"] == metrics["pg_clipfrac_lower"] == metrics["pg_clipfrac_dual"] == 0.0
    assert metrics["ppo_kl"] == 0.0
    if loss_type in ("default", "gspo", "gspo_token"):  # r = 1: loss = -mean(A)
        _close(loss, float(-ca.masked_mean(adv, mask)))


def test_policy_loss_is_finite_with_extreme_log_probs_and_rejects_bad_args():
    old = torch.tensor([[0.0, -80.0]])
    new = torch.tensor([[-80.0, 0.0]], requires_grad=True)
    loss, _ = ca.compute_policy_loss(old, new, torch.tensor([[1.0, -1.0]]), torch.ones(1, 2), 0.2, 0.3, 3.0)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(new.grad).all()
    with pytest.raises(ValueError, match="default, gspo, gspo_token, cispo, sapo"):
        ca.compute_policy_loss(old, new, old, torch.ones(1, 2), loss_type="ppo")
    with pytest.raises(ValueError, match="clip_ratio_dual"):
        ca.compute_policy_loss(old, new, old, torch.ones(1, 2), clip_ratio_dual=1.0)


# ------------------------------------------------------------------------------------------------ value loss


def test_value_loss_hand_worked():
    # V_old = 0.5, clip 0.2:
    #   t0: V=1,  R=1.5: clipped V 0.7 → max(0.25, 0.64) = 0.64 (clipped term larger)
    #   t1: V=2,  R=0:   clipped 0.7 → max(4, 0.49) = 4
    #   t2: V=0,  R=0:   clipped 0.3 → max(0, 0.09) = 0.09 (clipped term larger)
    #   t3: padding
    # token-mean: 0.5 * (0.64 + 4 + 0.09) / 3 = 0.788333; clipfrac 2/3
    vpreds = torch.tensor([[1.0, 2.0, 0.0, PAD]])
    values = torch.tensor([[0.5, 0.5, 0.5, PAD]])
    returns = torch.tensor([[1.5, 0.0, 0.0, PAD]])
    mask = torch.tensor([[1, 1, 1, 0]])
    loss, clipfrac = ca.compute_value_loss(vpreds, returns, values, mask, 0.2, "token-mean")
    _close(loss, 0.5 * 4.73 / 3)
    assert clipfrac == pytest.approx(2 / 3)
    assert isinstance(clipfrac, float)


# ------------------------------------------------------------------------------------------------ KL


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("kl", [0.5, -1.0]),  # d = log p - log p_ref = [-1 - -1.5, -2 - -1]
        ("abs", [0.5, 1.0]),
        ("mse", [0.125, 0.5]),  # 0.5 d^2
        ("low_var_kl", [math.exp(-0.5) - 1 + 0.5, math.exp(1.0) - 1 - 1.0]),  # exp(-d) - 1 + d
    ],
)
def test_kl_estimators_hand_worked(kind, expected):
    _close(ca.compute_kl(torch.tensor([-1.0, -2.0]), torch.tensor([-1.5, -1.0]), kind), expected)


def test_low_var_kl_is_clamped_and_nonnegative():
    kl = ca.compute_kl(torch.tensor([0.0, -30.0, 30.0]), torch.tensor([-30.0, 0.0, 0.0]), "low_var_kl")
    assert torch.isfinite(kl).all()
    assert kl.max() <= 10.0 and kl.min() >= 0.0
    _close(kl[0], 10.0)  # exp(30 clamped to 20) - ... far above 10


def test_full_kl_needs_distributions():
    # p = [0.5, 0.5], q = [0.25, 0.75]: KL = 0.5 ln 2 + 0.5 ln(2/3) = 0.143841
    p, q = torch.log(torch.tensor([[[0.5, 0.5]]])), torch.log(torch.tensor([[[0.25, 0.75]]]))
    _close(ca.compute_kl(p, q, "full"), [[0.143841]])
    _close(ca.kl_from_logits(p + 3.0, q - 1.0), [[0.143841]])  # logits: any shift
    with pytest.raises(ValueError, match="full-distribution"):
        ca.compute_kl(torch.zeros(2, 3), torch.zeros(2, 3), "full")
    with pytest.raises(ValueError, match="valid: kl, abs, mse, low_var_kl, full"):
        ca.compute_kl(torch.zeros(2), torch.zeros(2), "k4")


def test_kl_controllers():
    # beta 0.1, target 0.1, horizon 100:
    #   KL 0.15 → error clip(0.5) = 0.2 → beta * (1 + 0.2 * 10 / 100) = 0.102
    #   KL 0.09 → error -0.1 → 0.102 * (1 - 0.1 * 10 / 100) = 0.10098
    ctrl = ca.get_kl_controller("adaptive", 0.1, 0.1, 100)
    ctrl.update(0.15, n_steps=10)
    assert ctrl.kl_coef == pytest.approx(0.102)
    ctrl.update(0.09, n_steps=10)
    assert ctrl.kl_coef == pytest.approx(0.10098)
    fixed = ca.get_kl_controller("fixed", 0.3)
    fixed.update(5.0, 100)
    assert fixed.kl_coef == 0.3
    with pytest.raises(ValueError, match="fixed, adaptive"):
        ca.get_kl_controller("pid", 0.1)


def test_apply_kl_penalty_hand_worked():
    # beta 0.5, k1: d row0 [0.1, 0.2, 0.3], row1 [0.4, -0.2 | pad]
    # rewards row0 [0 - 0.05, 0 - 0.1, 1 - 0.15], row1 [0 - 0.2, 2 + 0.1, 0]
    # batch KL = mean(mean(0.1, 0.2, 0.3), mean(0.4, -0.2)) = mean(0.2, 0.1) = 0.15
    scores = torch.tensor([[0.0, 0.0, 1.0], [0.0, 2.0, 0.0]])
    ref = torch.zeros(2, 3)
    log_probs = torch.tensor([[0.1, 0.2, 0.3], [0.4, -0.2, 9.0]])
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    ctrl = ca.AdaptiveKLController(0.5, target_kl=0.1, horizon=10)
    rewards, metrics = ca.apply_kl_penalty(scores, log_probs, ref, mask, ctrl, "kl")
    _close(rewards, [[-0.05, -0.1, 0.85], [-0.2, 2.1, 0.0]])
    assert metrics["kl"] == pytest.approx(0.15)
    assert metrics["kl_coef"] == 0.5  # the coefficient used for this batch
    assert ctrl.kl_coef == pytest.approx(0.5 * (1 + 0.2 * 2 / 10))  # error clip(0.5) = 0.2, n_steps = 2


# ------------------------------------------------------------------------------------------------ chunked log-probs

# Head W maps h=(a, b) to logits (a, b, 0). For h = (ln 2, 0): z = (ln 2, 0, 0), softmax = (1/2, 1/4, 1/4), so
# log p(0) = ln 1/2, log p(1) = ln 1/4, H = 1/2 ln 2 + 2 * 1/4 ln 4 = 1.5 ln 2. For h = (0, ln 3): softmax =
# (1/5, 3/5, 1/5), log p(2) = ln 1/5, H = 2/5 ln 5 + 3/5 ln 5/3.
_HEAD = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]])
_HIDDEN = torch.tensor([[math.log(2), 0.0], [math.log(2), 0.0], [0.0, math.log(3)]])
_TARGETS = torch.tensor([0, 1, 2])
_EXPECTED_LP = [math.log(1 / 2), math.log(1 / 4), math.log(1 / 5)]
_H2, _H3 = 1.5 * math.log(2), 0.4 * math.log(5) + 0.6 * math.log(5 / 3)


@pytest.mark.parametrize("chunk_tokens", [1, 2, 1024])
def test_chunked_token_log_probs_hand_worked(chunk_tokens):
    lp, ent = ca.chunked_token_log_probs(
        _HIDDEN, lambda h: h @ _HEAD.T, _TARGETS, with_entropy=True, chunk_tokens=chunk_tokens
    )
    _close(lp, _EXPECTED_LP)
    _close(ent, [_H2, _H2, _H3])
    _, logged = ca.chunked_token_log_probs(
        _HIDDEN, lambda h: h @ _HEAD.T, _TARGETS, with_entropy=True, entropy_grad=False, chunk_tokens=chunk_tokens
    )
    _close(logged, [_H2, _H2, _H3])
    # temperature 2 on doubled hidden states gives the same distribution, per token or for all
    lp2, _ = ca.chunked_token_log_probs(2 * _HIDDEN, lambda h: h @ _HEAD.T, _TARGETS, 2.0, chunk_tokens=chunk_tokens)
    _close(lp2, _EXPECTED_LP)
    per_token = torch.tensor([2.0, 1.0, 0.5])
    scaled = _HIDDEN * per_token[:, None]
    lp3, _ = ca.chunked_token_log_probs(scaled, lambda h: h @ _HEAD.T, _TARGETS, per_token, chunk_tokens=chunk_tokens)
    _close(lp3, _EXPECTED_LP)
    assert ca.chunked_token_log_probs(_HIDDEN, lambda h: h @ _HEAD.T, _TARGETS)[1] is None


def test_chunked_token_log_probs_gradients_equal_the_full_log_softmax():
    gen = torch.Generator().manual_seed(0)
    hidden = torch.randn(7, 4, generator=gen, requires_grad=True)
    weight = torch.randn(11, 4, generator=gen, requires_grad=True)
    targets = torch.randint(0, 11, (7,), generator=gen)
    temps = torch.tensor([1.0, 0.7, 1.3, 1.0, 2.0, 0.5, 1.0])
    upstream = torch.randn(7, generator=gen)
    ent_upstream = torch.randn(7, generator=gen)

    logits = (hidden @ weight.T) / temps[:, None]
    full_lp = torch.log_softmax(logits, -1).gather(-1, targets[:, None]).squeeze(-1)
    full_ent = ca.entropy_from_logits(logits)
    expected = torch.autograd.grad(
        (full_lp * upstream + full_ent * ent_upstream).sum(), (hidden, weight), retain_graph=True
    )

    lp, ent = ca.chunked_token_log_probs(hidden, lambda h: h @ weight.T, targets, temps, True, chunk_tokens=3)
    torch.testing.assert_close(lp, full_lp)
    torch.testing.assert_close(ent, full_ent)
    got = torch.autograd.grad((lp * upstream + ent * ent_upstream).sum(), (hidden, weight))
    for a, b in zip(got, expected):
        torch.testing.assert_close(a, b)
    # entropy only logged: no gradient through it, the log-probs' gradient unchanged
    lp, ent = ca.chunked_token_log_probs(
        hidden, lambda h: h @ weight.T, targets, temps, True, entropy_grad=False, chunk_tokens=3
    )
    assert not ent.requires_grad and lp.requires_grad
    got = torch.autograd.grad((lp * upstream).sum(), (hidden, weight))
    for a, b in zip(got, torch.autograd.grad((full_lp * upstream).sum(), (hidden, weight))):
        torch.testing.assert_close(a, b)


def test_chunked_token_log_probs_keeps_no_chunk_logits_for_the_backward():
    """Autograd holds the hidden states, never a (chunk, V) block of logits: those are recomputed."""
    hidden = torch.randn(64, 4, requires_grad=True)
    weight = torch.randn(1000, 4, requires_grad=True)
    saved: list[int] = []

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        saved.append(tensor.numel())
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        lp, _ = ca.chunked_token_log_probs(
            hidden, lambda h: h @ weight.T, torch.zeros(64, dtype=torch.long), 1.0, True, chunk_tokens=16
        )
    assert saved and max(saved) < 16 * 1000
    lp.sum().backward()
    assert hidden.grad is not None and weight.grad is not None
    with pytest.raises(ValueError, match="chunk_tokens must be >= 1"):
        ca.chunked_token_log_probs(hidden, lambda h: h, torch.zeros(64, dtype=torch.long), chunk_tokens=0)
