"""The critic: token values and the value loss, for GAE."""
