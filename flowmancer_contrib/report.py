"""Run reports: ``--report run.html`` (one self-contained file, no network) and ``--report-json run.json``.

The HTML shows the job (name, start, duration, result), a timeline with one bar per task attempt coloured
by its outcome (inline SVG), the task graph (inline SVG), and per task its parameters (secrets masked),
attempts, durations, exit codes and the last lines of its output. The JSON holds the same data.

Load it with ``-p flowmancer_contrib.report``, or name ``RunReport`` in the YAML ``extensions:`` block (with
``flowmancer_contrib`` in ``config.extension_packages``): ``{extension: RunReport, parameters: {html: run.html}}``.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import os
import sys
from collections import deque
from pathlib import Path
from typing import Any, Callable, Optional

from pydantic import PrivateAttr

from flowmancer import hookimpl
from flowmancer.extensions import Extension, extension
from flowmancer.job import Job, TaskRun
from flowmancer.states import LogLines

TAIL = 20
COLOURS = {
    "COMPLETED": "#4caf50",
    "FAILED": "#e53935",
    "ABORTED": "#8e24aa",
    "DEFAULTED": "#fbc02d",
    "SKIPPED": "#26c6da",
    "RUNNING": "#1e88e5",
}


def _iso(ts: Optional[float]) -> Optional[str]:
    return dt.datetime.fromtimestamp(ts).astimezone().isoformat(timespec="milliseconds") if ts else None


def report_data(job: Job, exitcode: int, tails: dict[str, deque[str]]) -> dict[str, Any]:
    end = job.end_time or job.start_time
    tasks = []
    for t in job:
        try:  # a run-time fan-out's own task holds no validated parameters: its instances do
            params = {} if t.definition.deferred else t.instance.model_dump(mode="json")  # SecretStr: "**********"
        except Exception:  # noqa: BLE001 - a parameter that cannot be shown is not worth failing for
            params = {}
        attempts = [
            {
                "attempt": r.attempt,
                "start": _iso(r.start),
                "end": _iso(r.end),
                "start_offset": (r.start - job.start_time) if r.start else None,
                "duration": r.duration,
                "state": r.state.value,
                "exitcode": r.exitcode,
                "error": r.error,
            }
            for r in t.history
        ]
        tasks.append(
            {
                "name": t.name,
                "class": t.class_name,
                "state": t.state.value,
                "dependencies": list(t.dependencies),
                "tags": t.tags,
                "parameters": params,
                "attempts": attempts,
                "note": t.result.error if t.result and not t.history else None,
                "last_lines": list(tails.get(t.name, ())),
            }
        )
    outcome = "interrupted" if job.interrupted else ("success" if exitcode == 0 else "failure")
    return {
        "job": job.name,
        "start": _iso(job.start_time),
        "end": _iso(end),
        "duration": end - job.start_time,
        "exitcode": exitcode,
        "outcome": outcome,
        "tasks": tasks,
    }


# -- rendering ----------------------------------------------------------------------------------------

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#222}
h1{font-size:22px;margin:0 0 4px} .meta{color:#555;margin-bottom:18px}
.outcome-success{color:#2e7d32}.outcome-failure,.outcome-interrupted{color:#c62828}
section{margin:22px 0} h2{font-size:17px;border-bottom:1px solid #ddd;padding-bottom:4px}
svg text{font-size:12px;font-family:inherit} .legend span{display:inline-block;margin-right:12px}
.legend i{display:inline-block;width:10px;height:10px;margin-right:4px;vertical-align:middle}
details{border:1px solid #e0e0e0;border-radius:6px;margin:8px 0;padding:6px 10px}
summary{cursor:pointer;font-weight:600} table{border-collapse:collapse;margin:6px 0}
td,th{border:1px solid #e0e0e0;padding:3px 8px;text-align:left;font-size:13px}
pre{background:#f7f7f7;padding:8px;overflow:auto;font-size:12px;max-height:300px}
.state{font-weight:600}
"""


def _e(x: Any) -> str:
    return html.escape(str(x), quote=True)


def gantt(data: dict[str, Any]) -> str:
    tasks = [t for t in data["tasks"] if t["attempts"]]
    total = max(data["duration"], 1e-6)
    label_w, width, row = 180, 760, 22
    height = row * len(tasks) + 30
    parts = [
        f'<svg class="timeline" xmlns="http://www.w3.org/2000/svg" width="{label_w + width + 20}" '
        f'height="{height}" role="img" aria-label="timeline">'
    ]
    for k in range(5):  # time axis
        x = label_w + width * k / 4
        parts.append(f'<line x1="{x:.1f}" y1="0" x2="{x:.1f}" y2="{height - 18}" stroke="#eee"/>')
        parts.append(f'<text x="{x:.1f}" y="{height - 4}" text-anchor="middle">{total * k / 4:.3g}s</text>')
    for i, t in enumerate(tasks):
        y = i * row + 4
        parts.append(f'<text x="{label_w - 8}" y="{y + 13}" text-anchor="end">{_e(t["name"])}</text>')
        for a in t["attempts"]:
            x = label_w + width * (a["start_offset"] or 0) / total
            w = max(2.0, width * a["duration"] / total)
            colour = COLOURS.get(a["state"], "#90a4ae")
            tip = f"{t['name']} attempt {a['attempt']}: {a['state']} in {a['duration']:.3f}s"
            if a["error"]:
                tip += f" ({a['error']})"
            parts.append(
                f'<rect class="bar state-{a["state"]}" data-task="{_e(t["name"])}" data-attempt="{a["attempt"]}" '
                f'x="{x:.1f}" y="{y}" width="{w:.1f}" height="{row - 6}" rx="3" fill="{colour}">'
                f"<title>{_e(tip)}</title></rect>"
            )
    parts.append("</svg>")
    return "".join(parts)


def dag(data: dict[str, Any]) -> str:
    tasks = {t["name"]: t for t in data["tasks"]}
    depth: dict[str, int] = {}

    def level(name: str) -> int:
        if name not in depth:
            depth[name] = 0  # guards against (impossible, validated) cycles
            depth[name] = 1 + max((level(d) for d in tasks[name]["dependencies"]), default=-1)
        return depth[name]

    for name in tasks:
        level(name)
    columns: dict[int, list[str]] = {}
    for name in tasks:
        columns.setdefault(depth[name], []).append(name)
    box_w, box_h, gap_x, gap_y = 150, 30, 60, 12
    pos = {
        n: (c * (box_w + gap_x) + 10, r * (box_h + gap_y) + 10) for c, col in columns.items() for r, n in enumerate(col)
    }
    width = (max(columns, default=0) + 1) * (box_w + gap_x)
    height = max((len(col) for col in columns.values()), default=1) * (box_h + gap_y) + 20
    parts = [
        f'<svg class="dag" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
        f'aria-label="task graph">'
    ]
    for name, t in tasks.items():
        x2, y2 = pos[name]
        for d in t["dependencies"]:
            x1, y1 = pos[d]
            parts.append(
                f'<line x1="{x1 + box_w}" y1="{y1 + box_h / 2}" x2="{x2}" y2="{y2 + box_h / 2}" '
                'stroke="#999" stroke-width="1.2"/>'
            )
    for name, t in tasks.items():
        x, y = pos[name]
        colour = COLOURS.get(t["state"], "#cfd8dc")
        parts.append(
            f'<g class="node" data-task="{_e(name)}"><rect x="{x}" y="{y}" width="{box_w}" '
            f'height="{box_h}" rx="5" fill="{colour}" fill-opacity="0.35" stroke="{colour}"/>'
            f'<text x="{x + 8}" y="{y + 19}">{_e(name[:22])}</text></g>'
        )
    parts.append("</svg>")
    return "".join(parts)


def render_html(data: dict[str, Any]) -> str:
    legend = "".join(f'<span><i style="background:{c}"></i>{s.lower()}</span>' for s, c in COLOURS.items())
    rows = []
    for t in data["tasks"]:
        attempts = (
            "".join(
                f"<tr><td>{a['attempt']}</td><td class='state'>{a['state']}</td><td>{a['duration']:.3f}s</td>"
                f"<td>{_e(a['start'] or '')}</td><td>{_e('' if a['exitcode'] is None else a['exitcode'])}</td>"
                f"<td>{_e(a['error'] or '')}</td></tr>"
                for a in t["attempts"]
            )
            or f"<tr><td colspan='6'>{_e(t['note'] or 'did not run')}</td></tr>"
        )
        params = _e(json.dumps(t["parameters"], indent=2, default=str))
        tail = _e("\n".join(t["last_lines"])) or "(no output)"
        rows.append(
            f'<details class="task" data-task="{_e(t["name"])}"><summary>{_e(t["name"])} '
            f'<small>({_e(t["class"])})</small> — <span class="state">{t["state"]}</span></summary>'
            f"<p>depends on: {_e(', '.join(t['dependencies']) or '-')}; tags: {_e(', '.join(t['tags']) or '-')}</p>"
            f"<table><tr><th>attempt</th><th>state</th><th>duration</th><th>start</th><th>exit code</th>"
            f"<th>error</th></tr>{attempts}</table><p>parameters</p><pre>{params}</pre>"
            f"<p>last lines of output</p><pre>{tail}</pre></details>"
        )
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{_e(data['job'])}: {data['outcome']}</title><style>{CSS}</style></head><body>"
        f"<h1>{_e(data['job'])} <span class='outcome-{data['outcome']}'>{data['outcome']}</span></h1>"
        f"<div class='meta'>started {_e(data['start'])} · {data['duration']:.2f}s · exit code {data['exitcode']} · "
        f"{len(data['tasks'])} tasks</div>"
        f"<section><h2>Timeline</h2><div class='legend'>{legend}</div>{gantt(data)}</section>"
        f"<section><h2>Task graph</h2>{dag(data)}</section>"
        f"<section><h2>Tasks</h2>{''.join(rows)}</section></body></html>"
    )


def write_private(path: Path, text: str) -> None:
    """Write ``path`` as 0640 (it holds task output, like the logs), whatever the umask or a previous file's
    mode: a new file beside it, then renamed over it."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        os.unlink(tmp)
    except FileNotFoundError:
        pass
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o640)
    try:
        os.fchmod(fd, 0o640)  # the umask may have taken bits away; never adds them
        with os.fdopen(fd, "w", encoding="utf-8", closefd=False) as f:
            f.write(text)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def write_reports(data: dict[str, Any], html_path: Optional[Path], json_path: Optional[Path]) -> None:
    """Write the reports asked for, making their folders; one that cannot be written is a warning on stderr,
    never a failure of the job it reports on."""
    texts: list[tuple[Optional[Path], Callable[[], str]]] = [
        (html_path, lambda: render_html(data)),
        (json_path, lambda: json.dumps(data, indent=1, default=str)),
    ]
    for path, render in texts:
        if path is None:
            continue
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_private(path, render())
        except OSError as exc:
            print(f"WARNING: the run report could not be written to {path}: {exc.strerror or exc}", file=sys.stderr)


# -- the report: a YAML extension that is also a plugin ------------------------------------------------


@extension
class RunReport(Extension):
    """``{extension: RunReport, parameters: {html: run.html, json_path: run.json}}`` (paths relative to the app
    root), or ``--report``/``--report-json`` (plugin ``report``: ``flowmancer_contrib.reportopts``). Its
    ``@hookimpl`` methods make it a plugin while the job runs: it sees log lines and results, which extensions
    alone do not."""

    html: Optional[str] = None
    json_path: Optional[str] = None

    _tails: dict[str, deque[str]] = PrivateAttr(default_factory=dict)

    async def update(self, evt: Any) -> None:
        pass

    @hookimpl
    def flowmancer_task_output(self, job: Job, task: TaskRun, lines: LogLines) -> None:
        tail = self._tails.get(task.name)
        if tail is None:
            tail = self._tails[task.name] = deque(maxlen=TAIL)
        tail.extend(lines.messages)

    @hookimpl
    def flowmancer_job_finish(self, job: Job, exitcode: int) -> None:
        data = report_data(job, exitcode, self._tails)
        write_reports(
            data,
            self.resolve_path(self.html) if self.html else None,
            self.resolve_path(self.json_path) if self.json_path else None,
        )
