"""Checkpoint folders: complete-or-ignored, pointer, rotation, partial folders never loaded."""

from __future__ import annotations

import pytest

from verl.utils import checkpoint as ckpt


def _save(root, step: int) -> None:
    folder = ckpt.partial_dir(root, step)
    (folder / "actor").mkdir()
    (folder / "actor" / "weights.bin").write_bytes(b"w" * step)
    ckpt.finalize(root, step, {"global_step": step})


def test_finalize_makes_a_complete_folder_and_moves_the_pointer(tmp_path) -> None:
    _save(tmp_path, 2)
    _save(tmp_path, 4)
    assert ckpt.find_latest(tmp_path) == tmp_path / "global_step_4"
    assert (tmp_path / ckpt.POINTER_FILE).read_text().strip() == "4"
    assert ckpt.read_trainer_state(tmp_path / "global_step_4") == {"global_step": 4}
    assert not list(tmp_path.glob("*.partial"))


def test_partial_and_markerless_folders_are_ignored(tmp_path) -> None:
    _save(tmp_path, 2)
    half = ckpt.partial_dir(tmp_path, 3)  # crashed while writing step 3
    (half / "actor").mkdir()
    (tmp_path / "global_step_5").mkdir()  # a folder without the marker (copied by hand, or torn)
    assert ckpt.complete_steps(tmp_path) == [2]
    assert ckpt.find_latest(tmp_path) == tmp_path / "global_step_2"
    with pytest.raises(ValueError, match="not a complete checkpoint"):
        ckpt.read_trainer_state(tmp_path / "global_step_5")


def test_stale_or_broken_pointer_falls_back_to_a_scan(tmp_path) -> None:
    _save(tmp_path, 1)
    _save(tmp_path, 6)
    (tmp_path / ckpt.POINTER_FILE).write_text("garbage")
    assert ckpt.find_latest(tmp_path) == tmp_path / "global_step_6"
    (tmp_path / ckpt.POINTER_FILE).write_text("1\n")  # pointer behind (crash between rename and pointer)
    assert ckpt.find_latest(tmp_path) == tmp_path / "global_step_6"
    assert ckpt.find_latest(tmp_path / "nothing") is None


def test_rotation_keeps_the_newest(tmp_path) -> None:
    for step in (1, 2, 3, 4):
        _save(tmp_path, step)
    assert ckpt.rotate(tmp_path, 2) == [1, 2]
    assert ckpt.complete_steps(tmp_path) == [3, 4]
    assert ckpt.rotate(tmp_path, -1) == []


def test_resaving_a_step_replaces_it(tmp_path) -> None:
    _save(tmp_path, 3)
    folder = ckpt.partial_dir(tmp_path, 3)
    (folder / "new").write_text("x")
    ckpt.finalize(tmp_path, 3, {"global_step": 3, "again": True})
    assert (tmp_path / "global_step_3" / "new").exists()
    assert not (tmp_path / "global_step_3" / "actor").exists()
