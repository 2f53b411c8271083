"""immflow: upload-triggered media pipelines on Alibaba Cloud IMM.

The library the functions and the CLI share: event models, pipeline rules, TargetURI
templates, OSS URI rules, adapters over the official SDKs, the ledger and settings.
"""

__version__ = "0.1.0"
