"""The local account: its id, region and the one key pair every local service checks.

The key pair is made once per state folder and kept in ``DIR/account.json`` so that
clients configured from ``endpoints.json`` keep working across restarts.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import asdict, dataclass
from pathlib import Path

from localcloud.core.durable import atomic_write_bytes


@dataclass(frozen=True)
class Account:
    account_id: str
    region: str
    access_key_id: str
    access_key_secret: str

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
        if path.exists():
            return cls(**json.loads(path.read_text()))
        account = cls.new(region)
        state_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, json.dumps(asdict(account), indent=2).encode())
        return account
