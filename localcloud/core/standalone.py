"""What every ``python -m localcloud.<service>`` shares: the common options and the serve loop."""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Protocol

from localcloud.core.http import Service, ServiceServer


class ClosableService(Service, Protocol):
    def close(self) -> None: ...


def arguments(service: str, default_port: int, description: str | None) -> argparse.ArgumentParser:
    """A parser with ``--state-dir``, ``--host`` and ``--port``; the caller adds the service's own."""
    parser = argparse.ArgumentParser(prog=f"python -m localcloud.{service}", description=description)
    parser.add_argument(
        "--state-dir", type=Path, required=True, help="folder for account.json and the service's state"
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=default_port, help="0 picks a free port")
    return parser


def serve(service: ClosableService, host: str, port: int, listening: str) -> None:
    """Serve until SIGTERM or SIGINT, then stop the server and close the service.

    ``listening`` is printed (after ``format(host=, port=, url=)``) once requests are accepted;
    whoever started the process waits for that line and reads the address from it.
    """
    server = ServiceServer(service, host, port).start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    print(listening.format(host=server.host, port=server.port, url=server.url), flush=True)
    stop.wait()
    server.stop()
    service.close()


def spawn(service: str, state_dir: Path, *options: str) -> tuple[subprocess.Popen[str], str]:
    """Start ``python -m localcloud.<service>`` on a free port (unless ``options`` name one) and
    return the process and its URL, read from the line :func:`serve` prints once it listens."""
    port = () if "--port" in options else ("--port", "0")
    process = subprocess.Popen(
        [sys.executable, "-m", f"localcloud.{service}", "--state-dir", str(state_dir), *port, *options],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    if "listening on " not in line:  # "listening on URL", or "<service> listening on URL"
        process.kill()
        raise RuntimeError(f"the local {service} did not start: {line!r}")
    return process, line.split()[-1]
