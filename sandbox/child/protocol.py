"""Length-prefixed JSON frames over a stream socket.

Shared by the host, the fork-server and the child; standard library only.
"""

import json
import struct

HEADER = struct.Struct("!I")
MAX_FRAME_BYTES = 16 * 1024 * 1024


class ProtocolError(Exception):
    pass


def encode_frame(message):
    payload = json.dumps(message, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()
    if len(payload) > MAX_FRAME_BYTES:
        raise ProtocolError(f"frame of {len(payload)} bytes is over {MAX_FRAME_BYTES}")
    return HEADER.pack(len(payload)) + payload


def send_frame(sock, message):
    sock.sendall(encode_frame(message))


def _recv_exactly(sock, size):
    chunks = []
    remaining = size
    while remaining:
        chunk = sock.recv(min(remaining, 1 << 20))
        if not chunk:
            raise EOFError("channel closed")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def recv_frame(sock):
    (size,) = HEADER.unpack(_recv_exactly(sock, HEADER.size))
    if size > MAX_FRAME_BYTES:
        raise ProtocolError(f"frame of {size} bytes is over {MAX_FRAME_BYTES}")
    return json.loads(_recv_exactly(sock, size))


class FrameReader:
    """Incremental decoder for a non-blocking reader: feed bytes, take frames."""

    def __init__(self, max_frame_bytes=MAX_FRAME_BYTES):
        self.buffer = bytearray()
        self.max_frame_bytes = max_frame_bytes

    def feed(self, data):
        self.buffer += data

    def frames(self):
        while len(self.buffer) >= HEADER.size:
            (size,) = HEADER.unpack_from(self.buffer)
            if size > self.max_frame_bytes:
                raise ProtocolError(f"frame of {size} bytes is over {self.max_frame_bytes}")
            if len(self.buffer) < HEADER.size + size:
                return
            payload = bytes(self.buffer[HEADER.size : HEADER.size + size])
            del self.buffer[: HEADER.size + size]
            try:
                yield json.loads(payload)
            except (ValueError, RecursionError) as error:
                raise ProtocolError(f"malformed frame: {type(error).__name__}") from None
