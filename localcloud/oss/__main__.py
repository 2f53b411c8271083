"""Run the local OSS alone: ``python -m localcloud.oss --state-dir DIR [--port 9410]``.

The key pair is read from (or created in) ``DIR/account.json``. The line ``listening on URL``
is printed once the server accepts connections; it stops on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from pathlib import Path

from localcloud.core.account import Account
from localcloud.core.http import ServiceServer
from localcloud.oss.service import OssService


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m localcloud.oss", description=__doc__)
    parser.add_argument("--state-dir", type=Path, required=True, help="folder for the account and OSS state")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9410, help="0 picks a free port")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args()
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    account = Account.load_or_create(args.state_dir)
    service = OssService(args.state_dir, account)
    server = ServiceServer(service, args.host, args.port).start()
    print(f"listening on {server.url}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    server.stop()
    service.close()


if __name__ == "__main__":
    main()
