"""The live view's server: a helper process that reads the run's events and serves the page and the API.

Run as ``python -m flowmancer.ui.server TOKEN LISTEN_FD [FEED_FD]`` by ``reporter.Helper``, with the sockets
it made (so the runner knows the URL at once, and any error). Events come as JSON lines on stdin, or, with
``FEED_FD`` (``--watch``: one page for every rerun), from each rerun that connects to that Unix socket in
turn; the end of stdin ends the server.

Its own process, not a thread of the runner: the scheduler forks task processes and keeps no other thread
(``lifeline.fork_is_safe``), and a slow browser can only slow this process. Read-only: GET and HEAD only.
"""

from __future__ import annotations

import hmac
import json
import os
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, urlparse

from .plugin import LOOPBACK
from .state import State

LOOPBACK_NAMES = (*LOOPBACK, "[::1]")  # as a Host header writes ::1
FILES = {"/": ("page.html", "text/html; charset=utf-8"), "/page.js": ("page.js", "text/javascript; charset=utf-8")}
HEADERS = {
    # only this server's own script and styles; nothing sent elsewhere, the token never leaves in a Referer
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; "
    "connect-src 'self'; img-src 'self' data:",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def hostname(header: str) -> str:
    """The name in a ``Host`` header, without its port (``[::1]:8000`` -> ``[::1]``)."""
    return header[: header.find("]") + 1] if header.startswith("[") else header.rsplit(":", 1)[0]


def make_handler(state: State, token: str, loopback: bool) -> type[BaseHTTPRequestHandler]:
    here = resources.files(__package__)
    files = {path: (here.joinpath(name).read_bytes(), kind) for path, (name, kind) in FILES.items()}
    if token:  # the page's script is a request too
        page, kind = files["/"]
        files["/"] = (page.replace(b'src="page.js"', f'src="page.js?token={token}"'.encode()), kind)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's name; quiet
            pass

        def _allowed(self, query: dict[str, list[str]]) -> bool:
            if token and not hmac.compare_digest(query.get("token", [""])[0].encode(), token.encode()):
                self.send_error(403, "this live view needs the token printed with its URL (?token=...)")
                return False
            host = hostname(self.headers.get("Host") or "")
            if loopback and host not in LOOPBACK_NAMES:  # another name for 127.0.0.1: a DNS-rebinding page
                self.send_error(403, "served to localhost only")
                return False
            return True

        def _send(self, body: bytes, kind: str) -> None:
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            for k, v in HEADERS.items():
                self.send_header(k, v)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            url = urlparse(self.path)
            query = parse_qs(url.query)
            if not self._allowed(query):
                return
            if url.path == "/api/state":
                self._send(json.dumps(state.snapshot()).encode(), "application/json")
            elif url.path == "/api/events":
                since = self.headers.get("Last-Event-ID") or query.get("since", ["0"])[0]
                try:
                    self._events(max(0, int(since or 0)))
                except ValueError:
                    self.send_error(400, "since: a number (an event's seq)")
            elif url.path in files:
                self._send(*files[url.path])
            else:
                self.send_error(404)

        do_HEAD = do_GET  # noqa: N815

        def _events(self, since: int) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            for k, v in HEADERS.items():
                self.send_header(k, v)
            self.end_headers()
            self.close_connection = True
            if self.command == "HEAD":
                return
            self.wfile.flush()
            self.server.kept.add(self.connection)  # type: ignore[attr-defined]
            state.subscribe(since, self.connection)  # the broadcaster's now

    return Handler


class Server(ThreadingHTTPServer):
    """Its event streams outlive their request's thread: the broadcaster writes them and closes them."""

    daemon_threads = True

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.kept: set[socket.socket] = set()

    def shutdown_request(self, request: Any) -> None:
        if request in self.kept:
            self.kept.discard(request)
        else:
            super().shutdown_request(request)


def feed(state: State, fd: int, run: int) -> None:
    """Read the runner's events as they come, a batch (what one read returns) at a time."""
    rest = b""
    while True:
        try:
            chunk = os.read(fd, 1 << 16)
        except OSError:
            chunk = b""
        if not chunk:
            return
        lines = (rest + chunk).split(b"\n")
        rest = lines.pop()
        state.add(lines, run)


def accept_runs(state: State, listener: socket.socket) -> None:
    """``--watch``: each rerun connects in turn and is the next run."""
    run = 0
    while True:
        conn, _ = listener.accept()
        run += 1
        threading.Thread(target=feed, args=(state, conn.detach(), run), daemon=True).start()


def main(token: str, listen_fd: int, feed_fd: int = -1) -> int:
    """Serve on the listening socket the runner made; events on stdin, or (``feed_fd``) from each rerun."""
    try:  # the run comes first: on a busy machine the page is a little later, the tasks never are
        os.nice(10)
    except OSError:
        pass
    state = State()
    listener = socket.socket(fileno=listen_fd)
    host = listener.getsockname()[0]
    server = Server(listener.getsockname()[:2], make_handler(state, token, host in LOOPBACK_NAMES), False)
    server.socket.close()
    server.socket = listener
    threading.Thread(target=server.serve_forever, daemon=True).start()
    if feed_fd >= 0:
        threading.Thread(target=accept_runs, args=(state, socket.socket(fileno=feed_fd)), daemon=True).start()
        while sys.stdin.buffer.read(1 << 16):  # the watcher's end is the server's
            pass
    else:
        feed(state, sys.stdin.fileno(), 1)
    return 0


if __name__ == "__main__":
    code = main(sys.argv[1], *map(int, sys.argv[2:4]))
    # Nothing to flush or finalize: end now (the runner waits for this process as it ends; its threads,
    # the server's and the broadcaster's, go with it).
    os._exit(code)
