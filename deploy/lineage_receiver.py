"""A minimal OpenLineage HTTP endpoint: ``POST /api/v1/lineage`` appends each event, one JSON object
per line, to a file; ``GET /health`` answers 200.

It is the ``openlineage`` service of docker-compose.yaml so that lineage has somewhere to go out of
the box; a production deployment points ``AIRFLOW__OPENLINEAGE__TRANSPORT`` at Marquez or another
backend instead. Standard library only: it runs in any Python.
"""

from __future__ import annotations

import argparse
import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

LINEAGE_PATH = "/api/v1/lineage"


class LineageHandler(BaseHTTPRequestHandler):
    server: LineageServer

    def do_GET(self) -> None:
        if self.path == "/health":
            self._answer(200, b'{"status": "ok"}')
        else:
            self._answer(404, b'{"error": "not found"}')

    def do_POST(self) -> None:
        if self.path.rstrip("/") != LINEAGE_PATH:
            self._answer(404, b'{"error": "POST OpenLineage events to /api/v1/lineage"}')
            return
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        try:
            event = json.loads(body)
        except ValueError as e:
            self._answer(400, json.dumps({"error": f"not JSON: {e}"}).encode())
            return
        if not isinstance(event, dict) or "eventType" not in event and "job" not in event:
            self._answer(400, b'{"error": "not an OpenLineage event"}')
            return
        self.server.append(event)
        self._answer(201, b"{}")

    def _answer(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: one line per event would drown the service's log."""


class LineageServer(ThreadingHTTPServer):
    def __init__(self, address: tuple[str, int], out: Path) -> None:
        super().__init__(address, LineageHandler)
        self.out = out
        self._lock = threading.Lock()
        out.parent.mkdir(parents=True, exist_ok=True)

    def append(self, event: dict[str, object]) -> None:
        line = (json.dumps(event, separators=(",", ":")) + "\n").encode()
        with self._lock, self.out.open("ab") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5050)
    parser.add_argument("--out", type=Path, required=True, help="file the events are appended to (JSON lines)")
    args = parser.parse_args()
    server = LineageServer((args.host, args.port), args.out)
    print(f"OpenLineage receiver on http://{args.host}:{args.port}{LINEAGE_PATH} -> {args.out}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
