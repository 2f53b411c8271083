"""Run the local OSS alone: ``python -m localcloud.oss --state-dir DIR [--port 9410]``.

The key pair is read from (or created in) ``DIR/account.json``. The line ``listening on URL``
is printed once the server accepts connections; it stops on SIGTERM or SIGINT.
"""

from __future__ import annotations

import logging

from localcloud.core.account import Account
from localcloud.core.standalone import arguments, serve
from localcloud.oss.service import OssService


def main() -> None:
    parser = arguments("oss", 9410, __doc__)
    parser.add_argument("--log-level", default="INFO")
    parser.add_argument(
        "--restore-delay",
        type=float,
        default=1.0,
        help="seconds a RestoreObject takes before an Archive object is readable (default 1)",
    )
    args = parser.parse_args()
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    service = OssService(
        args.state_dir, Account.load_or_create(args.state_dir), restore_delay=args.restore_delay
    )
    serve(service, args.host, args.port, "listening on {url}")


if __name__ == "__main__":
    main()
