"""A local HTTP server for the download tests: 127.0.0.1 only, one thread, shut down by the test that starts it.

It serves one body at every path and can misbehave on purpose: answer an error status, cut a reply short, stall
in the middle of one, or ignore Range requests. It records the headers of every request it saw.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

STALL_LIMIT_S = 3.0  # a stalled reply gives up after this, so a test can never hang on the server


@dataclass
class Behaviour:
    """What the server answers; the lists are consumed one item per reply (None: behave)."""

    body: bytes = b""
    status: int | None = None  # answer this error status instead of the body
    honor_range: bool = True  # False: answer 200 with the whole body even to a Range request
    cuts: list[int | None] = field(default_factory=list)  # close the reply after this many body bytes
    stalls: list[int | None] = field(default_factory=list)  # send this many body bytes, then go silent
    requests: list[dict[str, str]] = field(default_factory=list)  # headers of each request seen
    stop: threading.Event = field(default_factory=threading.Event)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    timeout = 5  # a client that stops reading cannot hold a server thread for longer

    def do_GET(self) -> None:  # the name http.server calls
        b = self.server.behaviour
        b.requests.append(dict(self.headers.items()))
        if b.status is not None:
            self.send_error(b.status)
            return
        start = self._start(b)
        if start is None:
            return
        payload = b.body[start:]
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        cut = b.cuts.pop(0) if b.cuts else None
        stall = b.stalls.pop(0) if b.stalls else None
        if stall is not None:
            self.wfile.write(payload[:stall])
            self.wfile.flush()
            b.stop.wait(STALL_LIMIT_S)
            return
        self.wfile.write(payload if cut is None else payload[:cut])

    def _start(self, b: Behaviour) -> int | None:
        """Send the status line for the body from its first byte asked for; None when the reply is already sent."""
        m = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
        if m is None or not b.honor_range:
            self.send_response(200)
            return 0
        start = int(m[1])
        if start >= len(b.body):
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{len(b.body)}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        self.send_response(206)
        self.send_header("Content-Range", f"bytes {start}-{len(b.body) - 1}/{len(b.body)}")
        return start

    def log_message(self, format: str, *args: object) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a stalled handler must not block the shutdown

    def __init__(self, behaviour: Behaviour) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.behaviour = behaviour

    def handle_error(self, request, client_address) -> None:
        pass  # the client hanging up on a stalled or cut reply is what those tests do on purpose


@contextmanager
def serving(behaviour: Behaviour) -> Iterator[str]:
    """Serve behaviour on 127.0.0.1 (a free port) in a thread; yield the base URL; shut it down afterwards."""
    server = _Server(behaviour)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        behaviour.stop.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
