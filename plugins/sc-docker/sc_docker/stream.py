"""Docker's multiplexed attach stream, split back into the container's stdout and stderr.

A container attached without a TTY sends its output as frames: an 8-byte header (the stream,
``1`` stdout or ``2`` stderr, three zero bytes, then the payload size as a big-endian uint32)
followed by the payload. :class:`Demultiplexer` parses that incrementally and hands payloads on
as they arrive, without waiting for whole frames, so memory stays bounded whatever frame sizes
the engine chooses. :func:`pump` drives one from a socket into a pipe.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable

HEADER = struct.Struct(">BxxxI")
STDIN, STDOUT, STDERR = 0, 1, 2
STREAMS = (STDIN, STDOUT, STDERR)


class Demultiplexer:
    """Incremental parser: ``feed(bytes)`` returns ``[(stream, payload), ...]``.

    One frame may come back as several payload pieces, and one ``feed`` may return pieces of
    several frames; concatenating the pieces of one stream gives exactly what was written to it.
    Bytes that are not a docker stream (a TTY stream, garbage) set :attr:`error`: the pieces
    before them are still returned, and nothing after them ever is.
    """

    def __init__(self) -> None:
        self._header = b""
        self._stream = STDOUT
        self._remaining = 0
        self.error: str | None = None

    @property
    def idle(self) -> bool:
        """True between frames: the stream can end here without losing data."""
        return not self._header and not self._remaining and self.error is None

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        pieces: list[tuple[int, bytes]] = []
        view = memoryview(data)
        while view and self.error is None:
            if self._remaining:
                take = min(self._remaining, len(view))
                pieces.append((self._stream, bytes(view[:take])))
                self._remaining -= take
                view = view[take:]
                continue
            need = HEADER.size - len(self._header)
            self._header += bytes(view[:need])
            view = view[need:]
            if len(self._header) < HEADER.size:
                break
            header, self._header = self._header, b""
            if header[1:4] != b"\0\0\0" or header[0] not in STREAMS:
                self.error = f"not a multiplexed docker stream (header {header.hex()})"
            else:
                self._stream, self._remaining = HEADER.unpack(header)
        return pieces


def frame(stream: int, payload: bytes) -> bytes:
    """One frame as the engine writes it (for tests and fakes)."""
    return HEADER.pack(stream, len(payload)) + payload


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def pump(
    recv: Callable[[int], bytes],
    stdout_fd: int,
    on_stderr: Callable[[bytes], None],
    chunk: int = 1 << 16,
) -> str | None:
    """Copy a multiplexed stream: stdout payloads into ``stdout_fd``, stderr ones to
    ``on_stderr``, until the stream ends. Returns None at a clean end, else why it stopped.

    It never closes ``stdout_fd``; the caller does, so that the reader sees end-of-file.
    """
    demux = Demultiplexer()
    try:
        while True:
            data = recv(chunk)
            if not data:
                return None if demux.idle else "the container's output stream was cut mid-frame"
            for stream, payload in demux.feed(data):
                if stream == STDOUT:
                    write_all(stdout_fd, payload)
                elif stream == STDERR:
                    on_stderr(payload)
            if demux.error:
                return demux.error
    except OSError as error:
        return f"reading from the container failed: {error}"
