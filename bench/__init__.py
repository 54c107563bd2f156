"""Benchmarks: our GRPO step against TRL's, the self-reward overhead, rollout engines, scaling, GPU MFU.

Run with ``make bench`` or ``python -m bench [NAME ...]``; results go to BENCHMARKS.md.
"""
