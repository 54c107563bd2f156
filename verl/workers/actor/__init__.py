"""The actor: response log-probs and the policy update (one rank's share)."""
