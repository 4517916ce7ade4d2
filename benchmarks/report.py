"""The summary of a benchmark run: the issue's CPU targets checked on the measured points, and markdown tables."""

RATIO_TARGET, SPEEDUP_TARGET, SPEEDUP_TOKENS, REF_TOKENS = 1.2, 10.0, 16384, 1024


def _points(points, **fields):
    return [p for p in points if p.get("record", "point") == "point" and all(p.get(k) == v for k, v in fields.items())]


def targets(points: list[dict]) -> list[dict]:
    """Per config and batch: Aaren's per-token cost at the longest stream vs 1k (paired ratio, ≤ 1.2), and its
    speedup over the KV-cached Transformer at 16k tokens (paired, ≥ 10×)."""
    rows = []
    streams = _points(points, bench="stream")
    for config, batch in sorted({(p["config"], p["batch"]) for p in streams}):
        aaren = [p for p in _points(streams, config=config, batch=batch, kind="aaren", path="eager")
                 if "latency_ratio_vs_1k" in p]
        kv = [p for p in _points(streams, config=config, batch=batch, kind="transformer", path="eager",
                                 tokens=SPEEDUP_TOKENS) if "speedup_aaren_vs_this" in p]
        exported = [p for p in _points(streams, config=config, batch=batch, kind="transformer", path="onnxruntime",
                                       tokens=SPEEDUP_TOKENS) if "speedup_aaren_vs_this" in p]
        row = {"config": config, "batch": batch}
        if aaren:
            longest = max(aaren, key=lambda p: p["tokens"])
            row |= {"longest_tokens": longest["tokens"], "ratio_vs_1k": longest["latency_ratio_vs_1k"],
                    "ratio_met": longest["latency_ratio_vs_1k"] <= RATIO_TARGET}
        if kv:
            speedup = kv[-1]["speedup_aaren_vs_this"]  # the filled-cache check point if both exist
            row |= {"speedup_at_16k": speedup, "speedup_met": speedup >= SPEEDUP_TARGET}
        if exported:  # both steps exported to onnxruntime (exported_kv.py): no eager overhead on either side
            speedup = exported[-1]["speedup_aaren_vs_this"]
            row |= {"exported_speedup_at_16k": speedup, "exported_speedup_met": speedup >= SPEEDUP_TARGET}
        rows.append(row)
    return rows


def _fmt(x, spec):
    return "–" if x is None else format(x, spec)


def markdown(summary: dict) -> str:
    points = summary["points"]
    info = summary["provenance"]
    out = [f"Device: {info['device_name']} ({info['device']}), torch {info['versions'].get('torch')}, "
           f"{info['torch_threads']} thread(s), git {str(info['git'].get('sha'))[:10]}", ""]
    streams = _points(points, bench="stream")
    if streams:
        out += ["### Streaming: per-token latency (µs, median) / state size (Transformer rows: ×N = paired Aaren speedup)",
                "", *_stream_table(streams, _latency_cell)]
        out += ["", "### Streaming: cumulative time, s (wall / process CPU time; * = integrated from measured per-token costs)", "",
                *_stream_table(streams, _cumulative_cell)]
        out += ["", f"### Targets (paired measurements): cost at the longest stream / cost at 1k ≤ {RATIO_TARGET}; "
                    f"Aaren ≥ {SPEEDUP_TARGET:.0f}× faster than the KV cache at {SPEEDUP_TOKENS:,} tokens", "",
                "| config | B | longest stream | ratio vs 1k | met | speedup @16k, eager | met | "
                "speedup @16k, both in onnxruntime | met |", "|---|---|---|---|---|---|---|---|---|"]
        for t in summary["targets"]:
            out.append(f"| {t['config']} | {t['batch']} | {t.get('longest_tokens', '–')} | "
                       f"{_fmt(t.get('ratio_vs_1k'), '.2f')} | {t.get('ratio_met', '–')} | "
                       f"{_fmt(t.get('speedup_at_16k'), '.1f')} | {t.get('speedup_met', '–')} | "
                       f"{_fmt(t.get('exported_speedup_at_16k'), '.1f')} | {t.get('exported_speedup_met', '–')} |")
    trains = _points(points, bench="train")
    if trains:
        lengths = sorted({p["N"] for p in trains})
        out += ["", "### Training: forward+backward ms (min) / peak memory added (MiB)", "",
                "| config | scope | dtype | op | B | " + " | ".join(f"{n:,}" for n in lengths) + " |",
                "|---|---|---|---|---|" + "---|" * len(lengths)]
        for key in sorted({(p["config"], p["scope"], p["dtype"], p["op"], p["batch"]) for p in trains}):
            by_n = {p["N"]: p for p in _points(trains, config=key[0], scope=key[1], dtype=key[2], op=key[3],
                                               batch=key[4])}
            cells = [f"{by_n[n]['ms']:.3g} / {_fmt(None if by_n[n]['extra_bytes'] is None else by_n[n]['extra_bytes'] / 2**20, '.0f')}"
                     if n in by_n else "" for n in lengths]
            out.append("| " + " | ".join(map(str, key)) + " | " + " | ".join(cells) + " |")
    stopped = [j for j in summary["jobs"] if j["status"] != "done"]
    if stopped:
        out += ["", "Stopped jobs: " + "; ".join(f"{j['job']}: {j['reason']}" for j in stopped)]
    return "\n".join(out) + "\n"


def _bytes(n):
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.3g} {unit}"
        n /= 1024



def _stream_table(streams: list[dict], cell) -> list[str]:
    """Markdown rows: one per (config, kind, path, batch), one column per token count, `cell(point)` in each."""
    columns = _columns(streams)
    rows = ["| config | kind | path | B | " + " | ".join(f"{t:,}" for t in columns) + " |",
            "|---|---|---|---|" + "---|" * len(columns)]
    for key in sorted({(p["config"], p["kind"], p["path"], p["batch"]) for p in streams}):
        by_tokens = {p["tokens"]: p for p in _points(streams, config=key[0], kind=key[1], path=key[2], batch=key[3])}
        cells = [cell(by_tokens[t]) if t in by_tokens else "" for t in columns]
        rows.append("| " + " | ".join(map(str, key)) + " | " + " | ".join(cells) + " |")
    return rows

def _latency_cell(p):
    cell = f"{_fmt(p.get('us_per_token'), '.0f')} / {_bytes(p['state_bytes'])}"
    return cell + (f" (×{p['speedup_aaren_vs_this']:.1f})" if "speedup_aaren_vs_this" in p else "")


def _cumulative_cell(p):
    star = "*" if p["cumulative_method"] == "estimated" else ""
    cpu = p.get("cumulative_cpu_s")
    return f"{p['cumulative_s']:.3g}{star}" + ("" if cpu is None else f" / {cpu:.3g}{star}")


def _columns(streams):
    """Token counts shown in the tables: the powers of 4 from 1k (1k, 4k, 16k, ...) plus the longest."""
    measured = sorted({p["tokens"] for p in streams if "us_per_token" in p})
    shown = [t for t in measured if t >= REF_TOKENS and (t // REF_TOKENS).bit_length() % 2 == 1]
    return sorted(set(shown + measured[-1:]))
