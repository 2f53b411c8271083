"""What the e2e modules share: the repository and the way they run the immflow command."""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-c", "from immflow.cli import main; main()"]
