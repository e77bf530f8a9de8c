"""Built-in plugin ``terminal``: a line per finished task and a pytest-style summary.

Colour follows ``--color`` (auto: only on a TTY, never with ``NO_COLOR``; ``FORCE_COLOR`` forces it).
Task output is shown live with ``-s``/``-v``; otherwise only a failed task's last lines, at the end.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import deque
from typing import IO, Optional

from .config import Config
from .job import Job, TaskRun
from .livestatus import LiveStatus
from .markers import hookimpl
from .states import ExecutionState, LogLines, TaskResult
from .stdio import printable

S = ExecutionState
TAIL_LINES = 15
_COLOURS = {
    S.COMPLETED: "GREEN",
    S.FAILED: "RED",
    S.DEFAULTED: "YELLOW",
    S.ABORTED: "MAGENTA",
    S.SKIPPED: "CYAN",
}
_ORDER = (S.COMPLETED, S.FAILED, S.DEFAULTED, S.ABORTED, S.SKIPPED)


def _can_encode(stream: IO[str], text: str) -> bool:
    try:
        text.encode(getattr(stream, "encoding", None) or "utf-8")
        return True
    except (UnicodeEncodeError, LookupError):
        return False


def use_colour(choice: str, stream: IO[str]) -> bool:
    if choice == "yes":
        return True
    if choice == "no" or os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("FORCE_COLOR"):
        return True
    return stream.isatty() and os.environ.get("TERM") != "dumb"


def fmt_duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.2f}s"
    m, s = divmod(seconds, 60)
    return f"{int(m)}m{s:04.1f}s"


class TerminalReporter:
    def __init__(self, config: Config, stream: Optional[IO[str]] = None) -> None:
        self.config = config
        self.stream = stream or sys.stdout
        opt = config.option
        self.verbosity = getattr(opt, "verbose", 0) - getattr(opt, "quiet", 0)
        self.show_output = getattr(opt, "show_output", False) or self.verbosity > 0
        self.colour = use_colour(getattr(opt, "color", "auto"), self.stream)
        if self.colour:
            import colorama

            colorama.just_fix_windows_console()
            self._fore = colorama.Fore
            self._style = colorama.Style
        self.tails: dict[str, deque[str]] = {}
        self.width = 8
        self.dot = "·" if _can_encode(self.stream, "·─▸…") else "-"  # an ASCII-only terminal gets ASCII
        live = getattr(opt, "progress", "auto")
        tty = self.stream.isatty()
        enabled = live == "yes" or (live == "auto" and tty and self.colour and self.verbosity >= 0)
        self.live: Optional[LiveStatus] = LiveStatus(self.stream, self.paint) if enabled else None

    def paint(self, text: str, colour: Optional[str] = None, bold: bool = False) -> str:
        if not self.colour or (colour is None and not bold):
            return text
        pre = (getattr(self._fore, colour) if colour else "") + (self._style.BRIGHT if bold else "")
        return f"{pre}{text}{self._style.RESET_ALL}"

    def line(self, text: str = "") -> None:
        if self.live is not None and self.live.drawn:
            self.live.clear()  # lines scroll above the live block, which is drawn again below them
            self.stream.write(text + "\n")
            self.live.changed()
            if self.live.dirty:  # not redrawn yet (too soon): the block comes back at the next tick
                self.stream.flush()
            return
        self.stream.write(text + "\n")
        self.stream.flush()

    def rule(self, title: str, char: str = "=", colour: Optional[str] = None, bold: bool = False) -> None:
        width = 78
        pad = max(2, (width - len(title) - 2) // 2)
        self.line(self.paint(f"{char * pad} {title} {char * pad}", colour, bold))

    # hooks --------------------------------------------------------------------------------------

    @hookimpl
    def flowmancer_job_start(self, job: Job) -> None:
        self.width = max([len(t.name) for t in job] + [8])
        if self.verbosity < 0:
            return
        from . import __version__

        dot = self.dot
        restored = "" if not job.restart else f" {dot} resumed from checkpoint"
        self.line(
            self.paint(
                f"flowmancer {__version__} {dot} job '{printable(job.name)}' {dot} {len(job)} task"
                f"{'s' if len(job) != 1 else ''}{restored}",
                bold=True,
            )
        )
        self.line(f"root: {self.config.rootdir}")
        for lines in self.config.hook.flowmancer_report_header(config=self.config, job=job):
            for ln in lines or ():
                self.line(printable(ln))
        for ln in job.notes:
            self.line(printable(ln))

    @hookimpl
    def flowmancer_runjob_idle(self, job: Job) -> Optional[float]:
        if self.live is None:
            return None
        if self.live.job is None:
            self.live.job = job
        return self.live.tick()

    @hookimpl
    def flowmancer_task_start(self, job: Job, task: TaskRun) -> None:
        if self.live is not None:
            self.live.dirty = True
        self.tails.pop(task.name, None)  # the summary shows the last attempt only
        if self.verbosity > 0:
            att = f" (attempt {task.attempt}/{task.max_attempts})" if task.max_attempts > 1 else ""
            self.line(self.paint(f"  started    {printable(task.name)}{att}", "BLUE"))

    @hookimpl
    def flowmancer_task_output(self, job: Job, task: TaskRun, lines: LogLines) -> None:
        tail = self.tails.get(task.name)
        if tail is None:
            tail = self.tails[task.name] = deque(maxlen=TAIL_LINES)
        tail.extend(lines.messages)
        if self.show_output:
            prefix = self.paint(f"[{printable(task.name)}]", "BLUE")
            for ln in lines.messages:
                self.line(f"{prefix} {printable(ln)}")

    @hookimpl
    def flowmancer_task_finish(self, job: Job, task: TaskRun, result: TaskResult) -> None:
        if result.state is S.COMPLETED:
            self.tails.pop(task.name, None)
        if self.verbosity < 0:
            return
        state = result.state.value
        extra = ""
        if result.up_to_date is not None:
            state, extra = "UP-TO-DATE", time.strftime("ran %Y-%m-%d %H:%M:%S", time.localtime(result.up_to_date))
        elif result.state is S.DEFAULTED or result.state is S.SKIPPED or (not result.attempt and result.error):
            extra = printable(result.error or "")  # not run: why (a fan-out: "expanded into N tasks")
        else:
            extra = fmt_duration(result.duration)
            if task.max_attempts > 1:
                extra += f"  attempt {result.attempt}/{task.max_attempts}"
            if result.will_retry:
                extra += f", retrying in {result.retry_delay or 0:.3g}s"
            if result.error and result.state is not S.COMPLETED and self.verbosity >= 0:
                extra += f"  {printable(result.error)}"
        colour = _COLOURS.get(result.state) if not result.will_retry else "YELLOW"
        self.line(f"  {self.paint(f'{state:<10}', colour)} {printable(task.name):<{self.width}}  {extra}".rstrip())

    @hookimpl
    def flowmancer_job_finish(self, job: Job, exitcode: int) -> None:
        if self.live is not None:
            self.live.clear()
            self.live.job = None
        failed = [t for t in job if t.state in (S.FAILED, S.ABORTED)]
        if failed and self.verbosity >= -1:
            self.rule("FAILURES", "=", "RED")
            for t in failed:
                r = t.result
                title = f"{printable(t.name)} ({t.class_name}) attempt {t.attempt}/{t.max_attempts}"
                self.rule(title, "_", "RED", bold=True)
                for ln in self.tails.get(t.name, ()):
                    self.line(printable(ln))
                if r and r.error:
                    self.line(self.paint(f"E   {printable(r.error)}", "RED", bold=True))
        self.config.hook.flowmancer_terminal_summary(job=job, write=self.line, terminalreporter=self, exitcode=exitcode)
        up = sum(1 for t in job if t.state is S.COMPLETED and t.result is not None and t.result.up_to_date is not None)
        counts = [(s, job.count(s) - (up if s is S.COMPLETED else 0)) for s in _ORDER]
        parts = [self.paint(f"{n} {s.value.lower()}", _COLOURS[s]) for s, n in counts if n]
        if up:
            parts.insert(1 if counts[0][1] else 0, self.paint(f"{up} up to date", "GREEN"))
        not_run = job.count(S.INIT, S.PENDING, S.RUNNING)
        if not_run:
            parts.append(f"{not_run} not run")
        elapsed = (job.end_time or job.start_time) - job.start_time
        colour = "GREEN" if exitcode == 0 else ("MAGENTA" if job.interrupted else "RED")
        summary = ", ".join(parts) or "nothing ran"
        if job.interrupted:
            import signal

            summary = f"interrupted by {signal.Signals(job.interrupted).name}: " + summary
        text = f"{summary} in {fmt_duration(elapsed)}"
        if self.colour:
            self.line(
                self.paint("=" * 3, colour, bold=True) + " " + text + " " + self.paint("=" * 3, colour, bold=True)
            )
        else:
            self.line(f"=== {text} ===")


@hookimpl
def flowmancer_addoption(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("terminal reporting")
    group.add_argument(
        "-v", "--verbose", action="count", default=0, help="more output: task output lines and task starts (repeatable)"
    )
    group.add_argument(
        "-q",
        "--quiet",
        action="count",
        default=0,
        help="less output: -q only the failures and the summary line, -qq only the summary line",
    )
    group.add_argument("-s", "--show-output", action="store_true", help="echo task output live, prefixed by the task")
    group.add_argument(
        "--progress",
        choices=("auto", "yes", "no"),
        default="auto",
        help="the live status block at the bottom (auto: on a colour TTY, not with -q)",
    )
    group.add_argument(
        "--color",
        "--colour",
        dest="color",
        choices=("auto", "yes", "no"),
        default="auto",
        help="colour the output (auto: on a TTY unless NO_COLOR is set)",
    )


@hookimpl
def flowmancer_configure(config: Config) -> None:
    config.pluginmanager.register(TerminalReporter(config), "terminalreporter")
