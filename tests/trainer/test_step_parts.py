"""Parts of one training step that need no workers: advantages with KL in the reward under ``multi_reward``, and
which groups online filtering keeps."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from verl.protocol import DataProto
from verl.trainer.ray_trainer import RayPPOTrainer


def _trainer(**algorithm) -> RayPPOTrainer:
    defaults = dict(
        reward_channels={},
        filter_key="overall",
        filter_low=None,
        filter_high=None,
        use_reference_policy=True,
        use_kl_loss=False,
        norm_adv_by_std_in_grpo=True,
        adv_estimator="grpo",
        gamma=1.0,
        lam=1.0,
    )
    defaults.update(algorithm)
    trainer = RayPPOTrainer.__new__(RayPPOTrainer)
    trainer.config = SimpleNamespace(algorithm=SimpleNamespace(**defaults))
    return trainer


def test_multi_reward_with_kl_in_the_reward_keeps_the_penalty() -> None:
    # one group of two responses of 2 tokens; accuracy [1, 0] -> ±0.707107 (unbiased std 0.707107, eps 1e-6);
    # token-level KL penalties: row 0 -0.3 in all, row 1 -0.1: centred [-0.1, +0.1]
    scores = torch.tensor([[0.0, 1.0], [0.0, 0.0]])
    rewards = scores + torch.tensor([[-0.1, -0.2], [-0.05, -0.05]])
    batch = DataProto.from_dict(
        tensors={"response_mask": torch.ones(2, 2), "token_level_scores": scores, "token_level_rewards": rewards},
        non_tensors={"uid": np.array(["g", "g"], dtype=object)},
    )
    trainer = _trainer(reward_channels={"accuracy": 1.0})
    trainer._compute_advantage(batch, {"accuracy": [1.0, 0.0]})
    assert batch.batch["advantages"][:, 0].tolist() == pytest.approx([0.707106 - 0.1, -0.707106 + 0.1], abs=1e-5)
    # KL as a loss instead: the reward holds no penalty and the advantages are the channels' alone
    as_loss = _trainer(reward_channels={"accuracy": 1.0}, use_kl_loss=True)
    as_loss._compute_advantage(batch, {"accuracy": [1.0, 0.0]})
    assert batch.batch["advantages"][:, 0].tolist() == pytest.approx([0.707106, -0.707106], abs=1e-5)


def test_online_filtering_keeps_groups_whose_signal_varies_whatever_its_range() -> None:
    components = {
        # v1 overall spans [0, 2]: an all-correct group with mixed perception (mean 1.5) carries a signal; an
        # all-wrong, formatted group (0.1 each) does not, nor does an all-perfect one.
        "overall": [2.0, 1.0, 2.0, 1.0, 0.1, 0.1, 0.1, 0.1, 2.0, 2.0, 2.0, 2.0, 0.0, 1.0, 0.0, 0.0],
        "accuracy": [1.0] * 4 + [0.0] * 4 + [1.0] * 4 + [0.0] * 4,
        "perception": [1.0, 0.0, 1.0, 0.0] + [0.0] * 8 + [0.0, 1.0, 0.0, 0.0],
    }
    assert _trainer()._filter_groups(components, 4).tolist() == [0, 3]
    # multi_reward: the weighted channels are the signal
    assert _trainer(reward_channels={"accuracy": 1.0, "perception": 1.0})._filter_groups(components, 4).tolist() == [
        0,
        3,
    ]
    assert _trainer(reward_channels={"accuracy": 1.0, "perception": 0.0})._filter_groups(components, 4).tolist() == []
    # the optional band on the mean of filter_key still applies when set
    assert _trainer(filter_high=1.0)._filter_groups(components, 4).tolist() == [3]
