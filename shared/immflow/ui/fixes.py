"""What to do about a failed task: the README's troubleshooting advice, matched to IMM's Code and Message.

The README's "Troubleshooting" section is the guide; each entry here is one of its fixes, written
for the dashboard's failed-task panel. The first entry whose code and message pattern match wins.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Fix:
    code: str
    """IMM's Code, or ``*`` for any."""
    message: re.Pattern[str]
    advice: str


FIXES = (
    Fix(
        "InvalidArgument",
        re.compile(r"does not exist", re.I),
        "The source object was gone when IMM read it (deleted or renamed after the upload). "
        "Upload the file again; failed tasks are final.",
    ),
    Fix(
        "*",
        re.compile(r"starting with '/'|//", re.I),
        "The output template gave a key starting with '/': the upload was at the bucket root and the "
        "template has '/{dirname}/'. Drop {dirname} from the template or upload into a folder.",
    ),
    Fix(
        "InvalidArgument",
        re.compile(r"damaged or truncated", re.I),
        "The uploaded media is cut off or damaged. Upload the complete file again.",
    ),
    Fix(
        "InvalidArgument",
        re.compile(r"not a valid \w+ document|empty file", re.I),
        "The file is not a document of the type its name says. Check that the upload finished and that "
        "the extension matches the content, then upload it again.",
    ),
    Fix(
        "InvalidArgument",
        re.compile(r"pixels", re.I),
        "The image is larger than IMM processes. Resize it below the limit and upload it again.",
    ),
    Fix(
        "InvalidArgument",
        re.compile(r"forbidden|denied", re.I),
        "IMM's service role may not read the source or write the target. Check the project's service "
        "role (ram/imm-service-role-policy.json).",
    ),
    Fix(
        "Lost",
        re.compile(r""),
        "No result came within IMM's 7-day retention. Check that the IMM project's service role may "
        "publish to the topic and that the topic trigger of on_task_done exists; upload again to redo it.",
    ),
    Fix(
        "*",
        re.compile(r""),
        "Failed tasks are final: fix the rule (immflow validate) or the file, and upload again. "
        "`immflow tasks show TASK_ID` shows the whole request IMM was sent.",
    ),
)


def advice_for(code: str, message: str) -> str:
    for fix in FIXES:
        if fix.code in ("*", code) and fix.message.search(message):
            return fix.advice
    raise AssertionError("the last fix matches everything")  # pragma: no cover
