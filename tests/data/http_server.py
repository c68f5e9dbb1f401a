"""A local HTTP server for download tests: serves in-memory files, honours Range, can cut responses short."""

from __future__ import annotations

import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FileServer:
    """Serves `files` (name -> bytes) at http://127.0.0.1:<free port>/<name>, one thread per request.

    Attributes:
        honour_range: answer `Range: bytes=N-` with 206 and the tail (else ignore Range and send 200 + all).
        cuts_left: how many of the next responses send only half of their body and then close the connection.
        range_headers: the Range header (or None) of every GET, in order.
    """

    def __init__(self, files: dict[str, bytes]):
        self.files = dict(files)
        self.honour_range = True
        self.cuts_left = 0
        self.range_headers: list[str | None] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> "FileServer":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


def _range_start(header: str | None) -> int:
    match = re.fullmatch(r"bytes=(\d+)-", header or "")
    return int(match.group(1)) if match else 0


def _handler_for(server: FileServer):
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (the http.server API)
            name = self.path.split("?")[0].lstrip("/")
            server.range_headers.append(self.headers.get("Range"))
            if name not in server.files:
                self.send_error(404)
                return
            payload = server.files[name]
            start = _range_start(self.headers.get("Range")) if server.honour_range else 0
            if start >= len(payload) > 0:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(payload)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            body = payload[start:]
            self.send_response(206 if start else 200)
            if start:
                self.send_header("Content-Range", f"bytes {start}-{len(payload) - 1}/{len(payload)}")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if server.cuts_left > 0:
                server.cuts_left -= 1
                body = body[: len(body) // 2]
                self.close_connection = True
            self.wfile.write(body)

        def log_message(self, *args):  # keep the test output clean
            pass

    return Handler
