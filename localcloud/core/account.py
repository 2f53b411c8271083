"""The local account: its id, region and the one key pair every local service checks.

The key pair is made once per state folder and kept in ``DIR/account.json`` (0600, in a 0700
folder) so that clients configured from ``endpoints.json`` keep working across restarts.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import asdict, dataclass, field
from pathlib import Path

from localcloud.core.admin import secure_state_dir, write_secret_file


@dataclass(frozen=True)
class Account:
    account_id: str
    region: str
    access_key_id: str
    #: Left out of repr: an Account in a log line or a test failure must not show the secret.
    access_key_secret: str = field(repr=False)

    @classmethod
    def new(cls, region: str = "cn-hangzhou") -> Account:
        return cls(
            account_id=str(1_000_000_000_000_000 + secrets.randbelow(8_999_999_999_999_999)),
            region=region,
            access_key_id="LTAI" + secrets.token_hex(10),
            access_key_secret=secrets.token_urlsafe(22),
        )

    @classmethod
    def load_or_create(cls, state_dir: Path, region: str = "cn-hangzhou") -> Account:
        path = state_dir / "account.json"
        secure_state_dir(state_dir)
        if path.exists():
            os.chmod(path, 0o600)  # a folder from before the key pair was kept secret
            return cls(**json.loads(path.read_text()))
        account = cls.new(region)
        write_secret_file(path, json.dumps(asdict(account), indent=2).encode())
        return account
