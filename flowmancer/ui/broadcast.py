"""Every ``/api/events`` client's socket, written by one thread that never blocks on any of them.

A batch of events is appended to each client's buffer and the thread sends what each socket takes; a client
whose buffer passes ``CLIENT_BACKLOG`` bytes (a stuck or very slow browser) is dropped: its browser
reconnects and resumes from the last event it got (``Last-Event-ID``). One thread for all clients, not one
each: fifty open pages cost fifty ``send`` calls per batch, not fifty threads waking up.
"""

from __future__ import annotations

import os
import selectors
import socket
import threading
import time

#: bytes of events a client may fall behind before it is dropped
CLIENT_BACKLOG = 8 << 20
#: an idle stream gets a comment line this often, so a client that went away is noticed
KEEPALIVE = 15.0


class Broadcaster:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.sel = selectors.DefaultSelector()
        self.buffers: dict[socket.socket, bytearray] = {}
        self.writing: set[socket.socket] = set()  # those with bytes the socket did not take yet
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_r, False)
        os.set_blocking(self.wake_w, False)
        self.sel.register(self.wake_r, selectors.EVENT_READ)
        self.woken = False
        threading.Thread(target=self._run, daemon=True).start()

    def join(self, sock: socket.socket, first: bytes) -> None:
        """Take over ``sock`` (its response headers sent); ``first``: the events it missed."""
        sock.setblocking(False)
        with self.lock:
            self.buffers[sock] = bytearray(first)
            self.sel.register(sock, selectors.EVENT_READ)
            self._wake()

    def publish(self, block: bytes) -> None:
        with self.lock:
            for buf in self.buffers.values():
                buf += block
            if self.buffers:
                self._wake()

    def _wake(self) -> None:
        if not self.woken:
            self.woken = True
            try:
                os.write(self.wake_w, b"x")
            except BlockingIOError:
                pass

    def _drop(self, sock: socket.socket) -> None:
        del self.buffers[sock]
        self.writing.discard(sock)
        self.sel.unregister(sock)
        sock.close()

    def _run(self) -> None:
        quiet_since = time.monotonic()
        while True:
            ready = self.sel.select(KEEPALIVE)
            with self.lock:
                self.woken = False
                for key, mask in ready:
                    if key.fileobj == self.wake_r:
                        try:
                            while os.read(self.wake_r, 4096):
                                pass
                        except BlockingIOError:
                            pass
                    elif mask & selectors.EVENT_READ and key.fileobj in self.buffers:
                        self._read(key.fileobj)  # type: ignore[arg-type]
                if time.monotonic() - quiet_since >= KEEPALIVE:
                    quiet_since = time.monotonic()
                    for buf in self.buffers.values():
                        buf += b": keep-alive\n\n"
                for sock, buf in list(self.buffers.items()):
                    if buf:
                        self._send(sock, buf)

    def _read(self, sock: socket.socket) -> None:
        """A client says nothing after its request: what it sends is dropped; its end of the socket, noticed."""
        try:
            if sock.recv(4096) == b"":
                self._drop(sock)
        except BlockingIOError:
            pass
        except OSError:
            self._drop(sock)

    def _send(self, sock: socket.socket, buf: bytearray) -> None:
        try:
            del buf[: sock.send(buf)]
        except BlockingIOError:
            pass
        except OSError:  # reset by the peer
            self._drop(sock)
            return
        if len(buf) > CLIENT_BACKLOG:  # too far behind: dropped (a browser reconnects and resumes)
            self._drop(sock)
        elif bool(buf) != (sock in self.writing):  # told when it can take more
            self.writing.symmetric_difference_update({sock})
            self.sel.modify(sock, selectors.EVENT_READ | (selectors.EVENT_WRITE if buf else 0))
