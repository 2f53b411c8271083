"""Run the local IMM alone: ``python -m localcloud.imm --state-dir D --port P --oss-endpoint URL --mns-endpoint URL``.

The key pair is read from (or created in) ``D/account.json``; the server runs until SIGTERM or
Ctrl-C. It prints one line, ``imm listening on HOST:PORT``, once it accepts requests. Tasks that
were running when the process was killed run again on start (see :mod:`localcloud.imm.engine`).
"""

from __future__ import annotations

import logging

from localcloud.core.account import Account
from localcloud.core.standalone import arguments, serve
from localcloud.imm import ImmService


def main() -> None:
    parser = arguments("imm", 9412, __doc__)
    parser.add_argument("--oss-endpoint", required=True, help="the local OSS, e.g. http://127.0.0.1:9410")
    parser.add_argument("--mns-endpoint", required=True, help="the local MNS, e.g. http://127.0.0.1:9411")
    parser.add_argument("--engine-concurrency", type=int, default=2, help="tasks run at the same time")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    service = ImmService(
        args.state_dir,
        Account.load_or_create(args.state_dir),
        oss_endpoint=args.oss_endpoint,
        mns_endpoint=args.mns_endpoint,
        engine_concurrency=args.engine_concurrency,
    )
    serve(service, args.host, args.port, "imm listening on {host}:{port}")


if __name__ == "__main__":
    main()
