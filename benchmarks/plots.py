"""Figures in the paper's style (log axes): memory vs tokens, cumulative time vs tokens, per-token latency, and
training throughput / memory vs sequence length. matplotlib with the Agg backend (no display needed)."""
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)

COLOURS = {"aaren": "tab:blue", "transformer": "tab:orange"}
PATH_STYLES = {"eager": "-", "torchscript": "--", "onnxruntime": ":"}
OP_COLOURS = {"naive": "tab:gray", "hillis_steele": "tab:green", "chunked": "tab:blue", "sdpa": "tab:orange"}
MiB = 2 ** 20


def _series(points, key_fields, x_field):
    """Group points by key_fields, each group sorted by x_field."""
    groups = defaultdict(list)
    for p in points:
        groups[tuple(p[f] for f in key_fields)].append(p)
    return {k: sorted(v, key=lambda p: p[x_field]) for k, v in sorted(groups.items())}


def _grid(n_rows, n_cols, title):
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(4.2 * n_cols, 3.4 * n_rows), squeeze=False)
    fig.suptitle(title, fontsize=9)
    return fig, axes


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _stream_axis(ax, series, y_of, *, ylabel, config):
    for (kind, path, batch), points in series.items():
        points = [p for p in points if y_of(p) is not None]
        measured = [p for p in points if p.get("cumulative_method") != "estimated" or y_of is not _cumulative]
        estimated = [p for p in points if p not in measured]
        label = f"{kind}{'' if path == 'eager' else ' ' + path} B={batch}"
        style = dict(color=COLOURS[kind], linestyle=PATH_STYLES[path], marker="o" if batch == 1 else "s",
                     markersize=3)
        if measured:
            ax.plot([p["tokens"] for p in measured], [y_of(p) for p in measured], label=label, **style)
        if estimated:
            tail = measured[-1:] + estimated
            ax.plot([p["tokens"] for p in tail], [y_of(p) for p in tail], alpha=0.5,
                    **(style | {"linestyle": "-."}))
    ax.set(xscale="log", yscale="log", xlabel="tokens streamed", ylabel=ylabel, title=config)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=6)


def _cumulative(p):
    """CPU time of the process on CPU (robust to a shared machine's load), wall time on a GPU."""
    return p.get("cumulative_cpu_s", p.get("cumulative_s")) if p["device"] == "cpu" else p.get("cumulative_s")


def streaming_figures(points: list[dict], out_dir: Path) -> list[Path]:
    points = [p for p in points if p["bench"] == "stream"]
    if not points:
        return []
    configs = sorted({p["config"] for p in points})
    by_config = {c: _series([p for p in points if p["config"] == c], ("kind", "path", "batch"), "tokens")
                 for c in configs}
    written = []
    fig, axes = _grid(2, len(configs), "Streaming memory:\nAaren's constant state vs the KV cache")
    for j, config in enumerate(configs):
        _stream_axis(axes[0][j], by_config[config], lambda p: p["state_bytes"] / MiB, ylabel="state (MiB)",
                     config=config)
        _stream_axis(axes[1][j], by_config[config],
                     lambda p: None if p.get("peak_bytes") is None else p["peak_bytes"] / MiB,
                     ylabel="peak process memory (MiB)", config=config)
    written.append(_save(fig, out_dir / "streaming_memory.png"))

    for name, y_of, ylabel, title in (
            ("streaming_cumulative_time.png", _cumulative, "cumulative time (s; CPU time on CPU)",
             "Cumulative streaming time\n(dash-dot: integrated from measured per-token latencies)"),
            ("streaming_latency.png", lambda p: p.get("us_per_token"), "time per token (µs)",
             "Per-token latency of a streaming step\nof the whole backbone")):
        fig, axes = _grid(1, len(configs), title)
        for j, config in enumerate(configs):
            _stream_axis(axes[0][j], by_config[config], y_of, ylabel=ylabel, config=config)
        written.append(_save(fig, out_dir / name))
    return written


def training_figures(points: list[dict], out_dir: Path) -> list[Path]:
    points = [p for p in points if p["bench"] == "train"]
    if not points:
        return []
    scopes = [s for s in ("layer", "backbone") if any(p["scope"] == s for p in points)]
    dtypes = sorted({p["dtype"] for p in points})
    config = ", ".join(sorted({p["config"] for p in points}))
    written = []
    for name, y_of, ylabel in (("training_throughput.png", lambda p: p["tokens_per_s"], "tokens / s (fwd+bwd)"),
                               ("training_memory.png",
                                lambda p: None if p["extra_bytes"] is None else max(p["extra_bytes"], 1) / MiB,
                                "peak memory added (MiB)")):
        fig, axes = _grid(len(scopes), len(dtypes), f"Training ({config}):\n{ylabel} vs sequence length")
        for i, scope in enumerate(scopes):
            for j, dtype in enumerate(dtypes):
                ax = axes[i][j]
                chosen = [p for p in points if p["scope"] == scope and p["dtype"] == dtype]
                for (op, batch), series in _series(chosen, ("op", "batch"), "N").items():
                    series = [p for p in series if y_of(p) is not None]
                    ax.plot([p["N"] for p in series], [y_of(p) for p in series], marker="o", markersize=3,
                            color=OP_COLOURS[op], label=f"{op} B={batch}")
                ax.set(xscale="log", yscale="log", xlabel="sequence length N", ylabel=ylabel,
                       title=f"{scope}, {dtype}")
                ax.grid(True, alpha=0.3)
        axes[0][0].legend(fontsize=7)
        written.append(_save(fig, out_dir / name))
    return written
