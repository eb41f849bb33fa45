"""The demultiplexer that splits docker's attach stream into stdout and stderr (no engine)."""

from __future__ import annotations

import os
import random
import socket
import threading

import pytest
from sc_docker.stream import (
    HEADER,
    STDERR,
    STDOUT,
    Demultiplexer,
    frame,
    pump,
)


def joined(pieces: list[tuple[int, bytes]]) -> dict[int, bytes]:
    out = {STDOUT: b"", STDERR: b""}
    for stream, payload in pieces:
        out[stream] += payload
    return out


def test_header_layout_matches_the_engine():
    assert HEADER.size == 8
    assert frame(STDOUT, b"hi") == b"\x01\x00\x00\x00\x00\x00\x00\x02hi"
    assert frame(STDERR, b"") == b"\x02\x00\x00\x00\x00\x00\x00\x00"


def test_whole_frames_in_one_feed():
    demux = Demultiplexer()
    data = frame(STDOUT, b"abc") + frame(STDERR, b"oops") + frame(STDOUT, b"def")
    assert demux.feed(data) == [(STDOUT, b"abc"), (STDERR, b"oops"), (STDOUT, b"def")]
    assert demux.idle


def test_byte_at_a_time_gives_the_same_streams():
    data = frame(STDOUT, b"hello ") + frame(STDERR, b"warn") + frame(STDOUT, b"world")
    demux = Demultiplexer()
    pieces = []
    for byte in data:
        pieces += demux.feed(bytes([byte]))
    assert joined(pieces) == {STDOUT: b"hello world", STDERR: b"warn"}
    assert demux.idle


def test_random_splits_of_many_frames():
    rng = random.Random(7)
    frames, expected = [], {STDOUT: b"", STDERR: b""}
    for _ in range(200):
        stream = rng.choice((STDOUT, STDERR))
        payload = rng.randbytes(rng.choice((0, 1, 7, 8, 9, 100, 5000)))
        frames.append(frame(stream, payload))
        expected[stream] += payload
    data = b"".join(frames)
    demux, pieces, position = Demultiplexer(), [], 0
    while position < len(data):
        step = rng.randint(1, 3000)
        pieces += demux.feed(data[position : position + step])
        position += step
    assert joined(pieces) == expected
    assert demux.idle


def test_payload_is_handed_on_before_the_frame_is_complete():
    demux = Demultiplexer()
    big = b"x" * 100_000
    data = frame(STDOUT, big)
    assert demux.feed(data[:1008]) == [(STDOUT, b"x" * 1000)]
    assert not demux.idle
    assert demux.feed(data[1008:]) == [(STDOUT, b"x" * 99_000)]
    assert demux.idle


def test_partial_header_is_not_idle():
    demux = Demultiplexer()
    assert demux.feed(frame(STDOUT, b"ab")[:5]) == []
    assert not demux.idle


@pytest.mark.parametrize(
    "data",
    [
        b'{"op": "done"}',  # a TTY stream: raw bytes, no headers
        b"\x05\x00\x00\x00\x00\x00\x00\x01x",  # unknown stream
        b"\x01\x00\x01\x00\x00\x00\x00\x01x",  # padding not zero
    ],
)
def test_a_stream_without_docker_headers_is_an_error(data):
    demux = Demultiplexer()
    assert demux.feed(data) == []
    assert demux.error.startswith("not a multiplexed docker stream")
    assert not demux.idle


def test_data_before_garbage_is_kept_and_nothing_after_it():
    demux = Demultiplexer()
    pieces = demux.feed(frame(STDOUT, b"ok") + b"garbage!" + frame(STDOUT, b"later"))
    assert pieces == [(STDOUT, b"ok")]
    assert demux.error
    assert demux.feed(frame(STDOUT, b"more")) == []


def run_pump(chunks: list[bytes]):
    """Send ``chunks`` through a socket pair into ``pump``; return (stdout, stderr, end)."""
    engine, host = socket.socketpair()
    read_fd, write_fd = os.pipe()
    stderr = bytearray()
    result = {}

    def target():
        try:
            result["end"] = pump(host.recv, write_fd, stderr.extend, chunk=1024)
        finally:
            os.close(write_fd)

    def send():
        for chunk in chunks:
            engine.sendall(chunk)
        engine.shutdown(socket.SHUT_WR)

    threads = [threading.Thread(target=target), threading.Thread(target=send)]
    for thread in threads:
        thread.start()
    stdout = b""
    while data := os.read(read_fd, 65536):
        stdout += data
    for thread in threads:
        thread.join(5)
    os.close(read_fd)
    engine.close()
    host.close()
    return stdout, bytes(stderr), result["end"]


def test_pump_routes_stdout_to_the_pipe_and_stderr_aside():
    body = bytes(range(256)) * 1000
    data = frame(STDOUT, body[:100_000]) + frame(STDERR, b"trace") + frame(STDOUT, body[100_000:])
    chunks = [data[i : i + 777] for i in range(0, len(data), 777)]
    stdout, stderr, end = run_pump(chunks)
    assert stdout == body
    assert stderr == b"trace"
    assert end is None


def test_pump_reports_a_cut_frame():
    stdout, _, end = run_pump([frame(STDOUT, b"abcdef")[:-2]])
    assert stdout == b"abcd"
    assert end == "the container's output stream was cut mid-frame"


def test_pump_reports_garbage():
    stdout, _, end = run_pump([frame(STDOUT, b"ok"), b"garbage!garbage!"])
    assert stdout == b"ok"
    assert "not a multiplexed docker stream" in end


def test_pump_stops_when_the_reader_is_gone():
    engine, host = socket.socketpair()
    read_fd, write_fd = os.pipe()
    os.close(read_fd)
    engine.sendall(frame(STDOUT, b"nobody reads this"))
    end = pump(host.recv, write_fd, lambda data: None)
    os.close(write_fd)
    engine.close()
    host.close()
    assert end.startswith("reading from the container failed")
