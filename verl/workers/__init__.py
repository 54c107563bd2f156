"""What runs on each GPU: actor, reference, critic, rollout and reward workers."""
