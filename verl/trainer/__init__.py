"""The training loop, its config and the RL math."""


class TrainingAborted(RuntimeError):
    """The run cannot go on (a worker failed or died, too many non-finite steps); the message says why, at
    which step, and what to do: rerun the same command to resume from the last complete checkpoint, or, when a
    rerun would fail the same way, fix what the cause names. Defined here, free of heavy imports, so the entry
    point can catch it before torch is loaded."""
