"""The records both sides of the fork server exchange, and the socket that carries them (see ``forkserver``)."""

from __future__ import annotations

import array
import socket
import struct
from collections import deque

LEN = struct.Struct("=I")
SPAWNED = struct.Struct("=Qi")  # request id, pid
EXITED = struct.Struct("=ii")  # pid, exit code (negative: killed by that signal)
ID = struct.Struct("=Q")
MAX_FDS = 16  # room in one read's control buffer: a read never spans two records that carry fds
#: descriptors a spawn request carries: the task's event pipe and its two output pipes (write ends)
FDS_PER_TASK = 3
#: requests sent but not answered yet: enough to overlap the two processes, few enough to stay in the buffers
PIPELINE = 32


class Channel:
    """Records over a stream socket, with the file descriptors sent along with them, in order."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = bytearray()
        self.fds: deque[int] = deque()

    def fill(self, flags: int = 0) -> bool:
        """Read what is there (``BlockingIOError`` if nothing and non-blocking); ``False`` at EOF."""
        fds = array.array("i")
        msg, ancdata, _, _ = self.sock.recvmsg(
            1 << 16, socket.CMSG_SPACE(MAX_FDS * fds.itemsize), flags | socket.MSG_CMSG_CLOEXEC
        )
        for level, kind, data in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds.frombytes(data[: len(data) - len(data) % fds.itemsize])
        self.fds.extend(fds)
        self.buf += msg
        return bool(msg)

    def records(self) -> list[bytes]:
        """The complete records received so far (taken out of the buffer)."""
        return self.split(self.buf)

    @staticmethod
    def split(buf: bytearray) -> list[bytes]:
        """Take the complete records out of ``buf``."""
        out = []
        pos = 0
        while len(buf) - pos >= LEN.size:
            (size,) = LEN.unpack_from(buf, pos)
            if len(buf) - pos - LEN.size < size:
                break
            out.append(bytes(buf[pos + LEN.size : pos + LEN.size + size]))
            pos += LEN.size + size
        del buf[:pos]
        return out

    @staticmethod
    def frame(record: bytes) -> bytes:
        return LEN.pack(len(record)) + record
