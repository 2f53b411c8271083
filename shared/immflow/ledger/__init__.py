"""The results ledger (being split into a contract and SQL/Tablestore backends)."""

from immflow.ledger.sql import (
    FINAL_STATUSES,
    OPEN_STATUSES,
    CreateClaim,
    Ledger,
    LedgerError,
    NewRun,
    NewTask,
    RunRecord,
    TaskQuery,
    TaskRecord,
    claim_key,
    default_cli_ledger_url,
    iso_time,
    utcnow,
)

__all__ = [
    "FINAL_STATUSES",
    "OPEN_STATUSES",
    "CreateClaim",
    "Ledger",
    "LedgerError",
    "NewRun",
    "NewTask",
    "RunRecord",
    "TaskQuery",
    "TaskRecord",
    "claim_key",
    "default_cli_ledger_url",
    "iso_time",
    "utcnow",
]
