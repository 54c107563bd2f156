"""The training loop, its config and the RL math."""


class TrainingAborted(RuntimeError):
    """The run cannot go on (a worker died, too many non-finite steps); the message says why, at which step,
    and which complete checkpoint a rerun of the same command resumes from. Defined here, free of heavy
    imports, so the entry point can catch it before torch is loaded."""
