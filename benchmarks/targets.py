"""Issue #22's targets beside what one ``run.py`` run measured: one row per target, with a verdict."""

from __future__ import annotations

from typing import Callable, Optional

#: (what, limit, how to get the measured value from the run, unit); a value of None means not measured
Row = tuple[str, float, Optional[float], str]


def _ratio(a: Optional[float], b: Optional[float]) -> Optional[float]:
    return a / b if a is not None and b else None


def rows(median: Callable[[str, str, str], Optional[float]], extra: dict[str, float]) -> list[Row]:
    """``median(shape, who, what)``: a measured median; ``extra``: start-up, loading and --watch numbers."""
    out: list[Row] = []
    shapes = ("1 task", "100 independent", "chain of 30", "fan 1->200->1, mc 8", "1,000 independent")
    drivers = [r for s in shapes if (r := _ratio(median(s, "driver", "wall"), median(s, "ours", "wall")))]
    out.append(("driver / CLI, worst shape", 1.05, max(drivers) if drivers else None, "x"))
    for shape, limit in (("1 task", 1.0), ("100 independent", 0.7), ("chain of 30", 0.7)):
        out.append(
            (
                f"ours / Luigi, {shape}",
                limit,
                _ratio(median(shape, "ours", "wall"), median(shape, "luigi", "wall")),
                "x",
            )
        )
    for shape in shapes:
        limit = 0.2 if shape.startswith("1,000") else 0.25
        out.append(
            (
                f"ours / original, {shape}",
                limit,
                _ratio(median(shape, "ours", "wall"), median(shape, "original", "wall")),
                "x",
            )
        )
    for shape in ("100 independent", "fan 1->200->1, mc 8", "1,000 independent"):
        pt = _ratio(median(shape, "ours", "per_task"), median(shape, "floor", "per_task"))
        out.append((f"per task / floor, {shape}", 1.15, pt, "x"))
    hop = _ratio(median("chain of 30", "ours", "per_task"), median("chain of 30", "floor", "per_task"))
    out.append(("chain hop / floor's hop", 1.05, hop, "x"))
    for kind in ("independent", "layered DAG"):
        big, small = median(f"100,000 {kind}", "ours", "wall"), median(f"10,000 {kind}", "ours", "wall")
        out.append((f"100,000 {kind} / 10,000", 11.0, _ratio(big, small), "x"))
        out.append((f"100,000 {kind}: parent peak RSS", 400.0, median(f"100,000 {kind}", "ours", "rss_mb"), " MiB"))
    out.append(("load and validate a 100,000-task YAML", 3.0, extra.get("load"), " s"))
    out.append(("--watch: save -> rerun's first task (median)", 150.0, extra.get("watch_ms"), " ms"))
    out.append(("start-up: first task after the floor's", 30.0, extra.get("startup_gap_ms"), " ms"))
    return out


def bounds(median: Callable[[str, str, str], Optional[float]]) -> list[str]:
    """The per-task targets against ``floor_io.py``: what a log file, output pipes and a journal cost
    without any runner (``floor+I/O / floor``), and what Flowmancer costs beyond them."""
    lines = ["| shape | floor+I/O / floor | ours / floor+I/O |", "|---|---|---|"]
    for shape in ("100 independent", "fan 1->200->1, mc 8", "1,000 independent", "chain of 30"):
        floor, io, ours = (median(shape, who, "per_task") for who in ("floor", "floor+io", "ours"))
        if io is None:
            continue
        a, b = _ratio(io, floor), _ratio(ours, io)
        lines.append(f"| {shape} | {'-' if a is None else f'{a:.2f}x'} | {'-' if b is None else f'{b:.2f}x'} |")
    return lines if len(lines) > 2 else []


def bound_rows(median: Callable[[str, str, str], Optional[float]], extra: dict[str, float]) -> list[str]:
    """The targets Flowmancer misses, measured on ``floor_io.py`` instead: where even that lower bound is
    over the limit, no runner doing what it does can meet the target on this machine."""

    def as_floor_io(shape: str, who: str, what: str) -> Optional[float]:
        return median(shape, "floor+io" if who == "ours" else who, what)

    ours = {what: value for what, _, value, _ in rows(median, extra)}
    bound_extra = {**extra, "startup_gap_ms": extra.get("startup_bound_ms", float("nan"))}
    missed = [
        (what, limit, value, unit)
        for what, limit, value, unit in rows(as_floor_io, bound_extra)
        if ours.get(what) is not None and ours[what] > limit and not what.startswith("driver")
    ]
    lines = ["| target (measured on floor_io.py) | limit | floor_io.py's own | |", "|---|---|---|---|"]
    for line in table(missed)[2:]:
        lines.append(line.replace("| met |", "| possible |").replace("| NOT MET |", "| impossible here |"))
    return lines if missed else []


def table(measured: list[Row]) -> list[str]:
    lines = ["| target | limit | measured | |", "|---|---|---|---|"]
    for what, limit, value, unit in measured:
        if value is None:
            shown, verdict = "-", "not measured in this run"
        else:
            digits = 2 if unit == "x" else (0 if unit.strip() in ("ms", "MiB") else 2)
            shown, verdict = f"{value:.{digits}f}{unit}", "met" if value <= limit else "NOT MET"
        lim = f"{limit:.2f}{unit}" if unit == "x" else f"{limit:g}{unit}"
        lines.append(f"| {what} | <= {lim} | {shown} | {verdict} |")
    return lines
