"""Run the local MNS alone: ``python -m localcloud.mns --state-dir D --port P``.

The key pair is read from (or created in) ``D/account.json``; the server runs until SIGTERM or
Ctrl-C. It prints one line, ``mns listening on URL``, once it accepts requests.
"""

from __future__ import annotations

import argparse
import signal
import threading
from pathlib import Path

from localcloud.core.account import Account
from localcloud.core.http import ServiceServer
from localcloud.mns import MnsService


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m localcloud.mns", description=__doc__)
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9411)
    parser.add_argument("--time-scale", type=float, default=1.0, help="multiplies every push retry wait")
    args = parser.parse_args()

    service = MnsService(args.state_dir, Account.load_or_create(args.state_dir), args.time_scale)
    server = ServiceServer(service, args.host, args.port).start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    print(f"mns listening on {server.url}", flush=True)
    stop.wait()
    server.stop()
    service.close()


if __name__ == "__main__":
    main()
