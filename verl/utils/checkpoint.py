"""Checkpoint folders that are either complete or ignored.

Layout under ``trainer.save_checkpoint_path``::

    global_step_N/
      actor/            sharded model + optimizer (torch.distributed.checkpoint), per-rank extra state,
                        hf/ (config, tokenizer, processor) and meta.json for the model merger
      critic/           same, when there is a critic
      trainer_state.json  step, dataloader position, RNG seeds
      COMPLETE          written last, before the folder gets its final name
    latest_checkpointed_iteration.txt   the step of the newest complete checkpoint, replaced atomically

A step is first written to ``global_step_N.partial`` and renamed when every part is on disk, then the
pointer is updated. A crash at any moment leaves either the previous complete checkpoint or a ``.partial``
folder that resume ignores (and the next save of that step replaces).
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

COMPLETE_MARKER = "COMPLETE"
POINTER_FILE = "latest_checkpointed_iteration.txt"
_STEP_DIR = re.compile(r"^global_step_(\d+)$")


def step_dir(root: str | os.PathLike, step: int) -> Path:
    return Path(root) / f"global_step_{step}"


def partial_dir(root: str | os.PathLike, step: int) -> Path:
    """Where step ``step`` is written before it is complete (emptied first)."""
    path = Path(root) / f"global_step_{step}.partial"
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_json_atomic(path: str | os.PathLike, payload: Any) -> None:
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(payload, f, indent=2, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def finalize(root: str | os.PathLike, step: int, trainer_state: dict[str, Any]) -> Path:
    """Write the trainer state and the marker into the partial folder, rename it, then move the pointer."""
    root = Path(root)
    src = root / f"global_step_{step}.partial"
    write_json_atomic(src / "trainer_state.json", trainer_state)
    (src / COMPLETE_MARKER).write_text(f"{step}\n")
    _fsync_dir(src)
    dst = step_dir(root, step)
    if dst.exists():
        shutil.rmtree(dst)
    os.replace(src, dst)
    _fsync_dir(root)
    tmp = root / (POINTER_FILE + ".tmp")
    tmp.write_text(f"{step}\n")
    os.replace(tmp, root / POINTER_FILE)
    return dst


def is_complete(path: str | os.PathLike) -> bool:
    return (Path(path) / COMPLETE_MARKER).is_file()


def complete_steps(root: str | os.PathLike) -> list[int]:
    """Steps of the complete checkpoints under ``root``, ascending."""
    root = Path(root)
    if not root.is_dir():
        return []
    steps = []
    for child in root.iterdir():
        match = _STEP_DIR.match(child.name)
        if match and child.is_dir() and is_complete(child):
            steps.append(int(match.group(1)))
    return sorted(steps)


def find_latest(root: str | os.PathLike) -> Path | None:
    """The newest complete checkpoint (the pointer when it names a complete one, else a scan), or None."""
    root = Path(root)
    pointer = root / POINTER_FILE
    if pointer.is_file():
        try:
            candidate = step_dir(root, int(pointer.read_text().strip()))
            if is_complete(candidate):
                newer = [s for s in complete_steps(root) if s > int(pointer.read_text().strip())]
                if not newer:
                    return candidate
        except ValueError:
            pass
    steps = complete_steps(root)
    return step_dir(root, steps[-1]) if steps else None


def rotate(root: str | os.PathLike, save_limit: int) -> list[int]:
    """Delete the oldest complete checkpoints beyond ``save_limit`` (<= 0 keeps all); returns deleted steps."""
    if save_limit <= 0:
        return []
    steps = complete_steps(root)
    doomed = steps[:-save_limit]
    for step in doomed:
        shutil.rmtree(step_dir(root, step), ignore_errors=True)
    return doomed


def read_trainer_state(path: str | os.PathLike) -> dict[str, Any]:
    path = Path(path)
    if not is_complete(path):
        raise ValueError(f"{path} is not a complete checkpoint (no {COMPLETE_MARKER} marker); refusing to load it")
    with open(path / "trainer_state.json", encoding="utf-8") as f:
        return json.load(f)
