"""Multimodal rotary position ids (M-RoPE) for Qwen2-VL / Qwen2.5-VL / Qwen3-VL.

Text tokens advance one position in all three axes (temporal, height, width). The tokens of one image or
video form a block whose positions are its (t, h, w) grid coordinates after the spatial merge, offset by the
position where the block starts; the text after it resumes at ``max(block) + 1``. Qwen3-VL writes each
temporal patch of a video as its own block (t == 1) behind a text timestamp, so its video grids are split
per frame (``video_frames_as_blocks``); its images, and how text follows a block, are as in Qwen2.5-VL. Kept as a pure function so
the dataset (padded prompts), the rollout (prompt + response) and padding-free training compute the same ids.
"""

from __future__ import annotations

import torch


def get_rope_index(
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    image_grid_thw: torch.Tensor | None = None,
    video_grid_thw: torch.Tensor | None = None,
    second_per_grid_ts: list[float] | torch.Tensor | None = None,
    *,
    image_token_id: int,
    video_token_id: int,
    spatial_merge_size: int = 2,
    tokens_per_second: float = 2.0,
    video_frames_as_blocks: bool = False,
) -> torch.Tensor:
    """Position ids of shape (3, seq_len) for one sequence (1-D ``input_ids``).

    ``image_grid_thw``/``video_grid_thw`` list the (t, h, w) patch grids of the images/videos in order of
    appearance. Padding positions (``attention_mask == 0``) get position 0, as transformers 5 does.
    Qwen2.5-VL spaces video frames by ``second_per_grid_ts * tokens_per_second``; images have t == 1.
    """
    if attention_mask is None:
        attention_mask = torch.ones_like(input_ids)
    valid = attention_mask.bool()
    ids = input_ids[valid].tolist()
    position_ids = torch.zeros(3, input_ids.shape[0], dtype=torch.long)

    grids: list[tuple[str, tuple[int, int, int], float]] = []
    image_iter = iter(image_grid_thw.tolist() if image_grid_thw is not None else [])
    video_grids = video_grid_thw.tolist() if video_grid_thw is not None else []
    if video_frames_as_blocks:
        video_grids = [[1, h, w] for t, h, w in video_grids for _ in range(t)]
    video_iter = iter(video_grids)
    seconds = list(second_per_grid_ts.tolist() if torch.is_tensor(second_per_grid_ts) else second_per_grid_ts or [])

    out: list[list[int]] = [[], [], []]
    next_pos = 0
    i, video_seen = 0, 0
    while i < len(ids):
        token = ids[i]
        if token in (image_token_id, video_token_id):
            is_video = token == video_token_id
            try:
                t, h, w = next(video_iter) if is_video else next(image_iter)
            except StopIteration:
                kind = "video" if is_video else "image"
                raise ValueError(f"more {kind} blocks in input_ids than entries in {kind}_grid_thw") from None
            h, w = h // spatial_merge_size, w // spatial_merge_size
            t_scale = 1.0
            if is_video:
                t_scale = (seconds[video_seen] if video_seen < len(seconds) else 1.0) * tokens_per_second
                video_seen += 1
            grids.append(("video" if is_video else "image", (t, h, w), t_scale))
            for ti in range(t):
                for hi in range(h):
                    for wi in range(w):
                        out[0].append(next_pos + int(ti * t_scale))
                        out[1].append(next_pos + hi)
                        out[2].append(next_pos + wi)
            block = t * h * w
            if ids[i : i + block] != [token] * block:
                raise ValueError(f"expected {block} consecutive vision tokens at position {i} for grid {(t, h, w)}")
            next_pos = max(out[0][-1], out[1][-1], out[2][-1]) + 1
            i += block
        else:
            for axis in out:
                axis.append(next_pos)
            next_pos += 1
            i += 1
    position_ids[:, valid] = torch.tensor(out, dtype=torch.long).reshape(3, -1)
    return position_ids
