"""Model-specific helpers (position ids, FLOPs) that the workers and the dataset share."""
