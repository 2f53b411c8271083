"""Run the local MNS alone: ``python -m localcloud.mns --state-dir D --port P``.

The key pair is read from (or created in) ``D/account.json``; the server runs until SIGTERM or
Ctrl-C. It prints one line, ``mns listening on URL``, once it accepts requests.
"""

from __future__ import annotations

from localcloud.core.account import Account
from localcloud.core.standalone import arguments, serve
from localcloud.mns import MnsService


def main() -> None:
    parser = arguments("mns", 9411, __doc__)
    parser.add_argument("--time-scale", type=float, default=1.0, help="multiplies every push retry wait")
    args = parser.parse_args()
    service = MnsService(args.state_dir, Account.load_or_create(args.state_dir), args.time_scale)
    serve(service, args.host, args.port, "mns listening on {url}")


if __name__ == "__main__":
    main()
