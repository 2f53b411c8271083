"""Run the local Tablestore alone: ``python -m localcloud.ots --state-dir D --port P``.

The key pair is read from (or created in) ``D/account.json``; the instance ``immflow`` exists
from the start. The server runs until SIGTERM or Ctrl-C and prints one line, ``ots listening on
URL``, once it accepts requests.
"""

from __future__ import annotations

from localcloud.core.account import Account
from localcloud.core.standalone import arguments, serve
from localcloud.ots import OtsService


def main() -> None:
    args = arguments("ots", 9414, __doc__).parse_args()
    service = OtsService(args.state_dir, Account.load_or_create(args.state_dir))
    serve(service, args.host, args.port, "ots listening on {url}")


if __name__ == "__main__":
    main()
