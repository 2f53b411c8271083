"""What a project's service role may do in the local OSS: the local stand-in for RAM.

In the cloud IMM reads sources and writes targets by assuming the project's ``ServiceRole``
(docs/imm.md#projects-and-service-roles). Locally the roles and their buckets are listed in ``<state_dir>/imm/policy.json``::

    {
      "roles": {
        "AliyunIMMDefaultRole": {"read": ["*"], "write": ["*"]},
        "media-reader": {"read": ["media-in"], "write": ["media-out", "thumbs-*"]}
      }
    }

Each entry is a bucket name or an ``fnmatch`` pattern. A role that is not listed may do nothing.
The file is written with the default role (every local bucket) when it does not exist, and read
again for every task, so an edit takes effect without a restart. A task whose role may not read a
source or write a target ends ``Failed`` with ``InvalidArgument`` / ``File access forbidden.``
(docs/imm.md#errors).
"""

from __future__ import annotations

import json
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Literal

from localcloud.core.durable import atomic_write_bytes

DEFAULT_ROLE = "AliyunIMMDefaultRole"
DEFAULT_POLICY = {"roles": {DEFAULT_ROLE: {"read": ["*"], "write": ["*"]}}}

Access = Literal["read", "write"]


class Policy:
    def __init__(self, path: Path) -> None:
        self.path = path
        if not path.exists():
            atomic_write_bytes(path, (json.dumps(DEFAULT_POLICY, indent=2) + "\n").encode())

    def allows(self, role: str, access: Access, bucket: str) -> bool:
        try:
            roles = json.loads(self.path.read_text()).get("roles", {})
        except (OSError, ValueError, AttributeError):
            # A broken policy file must not grant access; the task's message says where to look.
            return False
        patterns = roles.get(role, {}).get(access, []) if isinstance(roles.get(role), dict) else []
        return any(isinstance(p, str) and fnmatchcase(bucket, p) for p in patterns)
