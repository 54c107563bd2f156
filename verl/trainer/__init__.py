"""The training loop, its config and the RL math."""
