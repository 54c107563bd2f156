"""Reward computation: the manager that calls a user reward function on decoded responses."""
