"""PNG plots of a results document (matplotlib, headless)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from unseen.bench.machine import machine_line

__all__ = ["write_plots"]


def _errors(stats: list[dict[str, Any]]) -> tuple[list[float], list[list[float]]]:
    medians = [s["median"] for s in stats]
    below = [s["median"] - s["min"] for s in stats]
    above = [s["max"] - s["median"] for s in stats]
    return medians, [below, above]


def write_plots(results: dict[str, Any], out_dir: Path) -> list[Path]:
    """Write aggregates, scoring, holders, analysts and memory plots; returns the paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    machine = machine_line(results["machine"])
    written: list[Path] = []

    def save(fig: Any, name: str, title: str) -> None:
        fig.suptitle(title, fontsize=11)
        fig.text(0.5, 0.005, machine, ha="center", va="bottom", fontsize=7, color="0.4")
        fig.tight_layout(rect=(0, 0.03, 1, 0.95))
        path = out_dir / name
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)

    cells = results["aggregates"]
    if cells:
        fig, ax = plt.subplots(figsize=(7, 4.5))
        x = [c["rows_total"] for c in cells]
        for key, name in (("federated_s", "federated (encrypted)"), ("centralized_s", "DuckDB")):
            stats = [c[key] for c in cells if c[key]]
            if len(stats) == len(cells):
                y, err = _errors(stats)
                ax.errorbar(x, y, yerr=err, marker="o", capsize=3, label=name)
        for c in cells:
            if c["ratio"]:
                ax.annotate(
                    f"{c['ratio']:.2f}x",
                    (c["rows_total"], c["federated_s"]["median"]),
                    textcoords="offset points",
                    xytext=(4, 6),
                    fontsize=8,
                )
        ax.set(xscale="log", yscale="log", xlabel="rows in all (3 holders)", ylabel="seconds")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
        save(fig, "aggregates.png", "GROUP BY city, COUNT/SUM/AVG/STDDEV: federated vs DuckDB")

    cells = results["scoring"]
    if cells:
        counts = sorted({c["features"] for c in cells})
        fig, axes = plt.subplots(
            1, len(counts), figsize=(max(7.0, 4.2 * len(counts)), 4.5), squeeze=False
        )
        for ax, features in zip(axes[0], counts, strict=True):
            row = sorted(
                (c for c in cells if c["features"] == features), key=lambda c: c["entities"]
            )
            x = [c["entities"] for c in row]
            for key, name in (
                ("end_to_end_s", "end to end"),
                ("kernel_floor_s", "HE kernel floor"),
                ("numpy_s", "numpy plaintext"),
            ):
                stats = [c.get(key) for c in row]
                if all(stats):
                    y, err = _errors(stats)  # type: ignore[arg-type]
                    ax.errorbar(x, y, yerr=err, marker="o", capsize=3, label=name)
            pail = [c.get("paillier") for c in row]
            if all(pail):
                ax.plot(
                    x,
                    [p["wall_s_estimate"] for p in pail],  # type: ignore[index]
                    marker="s",
                    linestyle="--",
                    label="Paillier (extrapolated)",
                )
            ax.set(xscale="log", yscale="log", xlabel="entities", title=f"{features} features")
            ax.grid(True, which="both", alpha=0.3)
        axes[0][0].set_ylabel("seconds")
        axes[0][0].legend(fontsize=8)
        save(fig, "scoring.png", "Encrypted linear scoring over 3 holders")

    cells = sorted(results["scaling"]["holders"], key=lambda c: c["holders"])
    if cells:
        fig, ax = plt.subplots(figsize=(7, 4.5))
        x = [c["holders"] for c in cells]
        for key, name in (("aggregate", "aggregate"), ("scoring", "score")):
            inner = "federated_s" if key == "aggregate" else "end_to_end_s"
            y, err = _errors([c[key][inner] for c in cells])
            ax.errorbar(x, y, yerr=err, marker="o", capsize=3, label=name)
        ax.plot(x, [c["startup_s"] for c in cells], marker="^", linestyle=":", label="start-up")
        ax.set(xlabel="holders", ylabel="seconds", xticks=x)
        ax.grid(True, alpha=0.3)
        ax.legend()
        save(fig, "holders.png", "Same rows and features split over more holders")

    cells = results["scaling"]["analysts"]
    if cells:
        fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4.5))
        for what in sorted({c["what"] for c in cells}):
            row = [c for c in cells if c["what"] == what]
            x = [c["analysts"] for c in row]
            left.plot(x, [c["throughput_per_s"] for c in row], marker="o", label=what)
            y, err = _errors([c["latency_s"] for c in row])
            right.errorbar(x, y, yerr=err, marker="o", capsize=3, label=what)
        left.set(xlabel="concurrent analysts", ylabel="calls per second", title="throughput")
        left.set_ylim(bottom=0)
        right.set(xlabel="concurrent analysts", ylabel="seconds", title="latency per call")
        for ax in (left, right):
            ax.grid(True, alpha=0.3)
            ax.legend(fontsize=8)
        save(fig, "analysts.png", "Concurrent analysts on 3 holders")

    rows = results["memory"]
    if rows:
        fig, ax = plt.subplots(figsize=(8, 0.35 * len(rows) + 1.5))
        names = [r["scenario"] for r in rows]
        width = 0.27
        for offset, (key, name) in enumerate(
            (
                ("holder_peak_rss_bytes_max", "holder (max)"),
                ("coordinator_peak_rss_bytes", "coordinator"),
                ("analyst_peak_rss_bytes", "analyst"),
            )
        ):
            values = [(r[key] or 0) / 2**20 for r in rows]
            ax.barh([i + (offset - 1) * width for i in range(len(rows))], values, width, label=name)
        ax.set_yticks(range(len(rows)), names, fontsize=8)
        ax.invert_yaxis()
        ax.set_xlabel("peak RSS (MiB)")
        ax.grid(True, axis="x", alpha=0.3)
        ax.legend(fontsize=8)
        save(fig, "memory.png", "Peak RSS per process and cell")
    return written
