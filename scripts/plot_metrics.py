"""Plot a run's metrics.jsonl (written by trainer.logger=file) as PNG curves.

    python3 scripts/plot_metrics.py checkpoints/vision_sr1/demo/metrics.jsonl [--out curves.png]

Panels: rewards (overall and each component), response length, KL and entropy, validation accuracy.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

PANELS = {
    "reward": lambda k: k.startswith("reward/") and not k.endswith(("_missing", "leak_guarded")),
    "response length": lambda k: k in ("response_length/mean", "response_length/max"),
    "KL / entropy": lambda k: (
        k in ("actor/kl_loss", "actor/reference_kl", "actor/entropy_old", "actor/entropy", "actor/reward_kl")
    ),
    "validation": lambda k: k in ("val/overall", "val/blind_accuracy", "val/language_shortcut_rate"),
}


def read_metrics(path: str | Path) -> list[dict]:
    rows = []
    with open(path, encoding="utf-8") as f:
        for line_number, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise SystemExit(f"{path}:{line_number}: not JSON ({exc}); is this a metrics.jsonl?") from None
    if not rows:
        raise SystemExit(f"{path}: no metrics rows")
    return rows


def plot(rows: list[dict], out: str | Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = sorted({k for row in rows for k in row if k != "step"})
    fig, axes = plt.subplots(len(PANELS), 1, figsize=(8, 3 * len(PANELS)), sharex=True)
    for ax, (title, wanted) in zip(axes, PANELS.items()):
        for key in filter(wanted, keys):
            points = [
                (r["step"], r[key]) for r in rows if isinstance(r.get(key), (int, float)) and math.isfinite(r[key])
            ]
            if points:
                xs, ys = zip(*points)
                ax.plot(xs, ys, marker="." if len(points) < 30 else None, label=key)
        ax.set_title(title)
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=7, loc="best")
    axes[-1].set_xlabel("step")
    fig.tight_layout()
    out = Path(out)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("metrics", help="path to metrics.jsonl")
    parser.add_argument("--out", help="PNG to write (default: next to the metrics file)")
    args = parser.parse_args(argv)
    out = args.out or str(Path(args.metrics).with_name("metrics.png"))
    print(f"wrote {plot(read_metrics(args.metrics), out)}")


if __name__ == "__main__":
    main()
