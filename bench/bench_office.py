"""One office document to PDF: the local IMM's warm LibreOffice against a LibreOffice of its own.

Run: ``python bench/bench_office.py [--runs 5]``. The demo's report.docx and slides.pptx and a small
xlsx are converted ``--runs`` times each way, alternating (a warm conversion, then a one-shot one),
with ``localcloud.imm.office`` as the engine runs it; the warm LibreOffice's start is timed on its
own. Prints the medians per document and one JSON line. The machine may be shared: compare ratios.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from immflow.demo.media import make_samples

from localcloud.imm import office


def _xlsx(folder: Path) -> Path:
    csv = folder / "table.csv"
    csv.write_text("name,value\n" + "".join(f"row {n},{n * n}\n" for n in range(200)))
    subprocess.run(
        ["soffice", f"-env:UserInstallation={(folder / 'xlsx-profile').as_uri()}", "--headless",
         "--convert-to", "xlsx", "--outdir", str(folder), str(csv)],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    return folder / "table.xlsx"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-office-") as scratch:
        root = Path(scratch)
        samples = make_samples(root / "samples")
        documents = [s.path for s in samples if s.path.suffix in (".docx", ".pptx")] + [_xlsx(root)]
        warm = office.WarmOffice(root / "warm-profile")
        started = time.perf_counter()
        warm.convert(documents[0], root / "first.pdf", 120)  # starts it
        start_and_first = time.perf_counter() - started
        times: dict[str, dict[str, list[float]]] = {}
        try:
            for run in range(args.runs):
                for document in documents:
                    out = root / f"run-{run}-{document.stem}"
                    out.mkdir()
                    began = time.perf_counter()
                    assert warm.convert(document, out / "warm.pdf", 120), "no warm LibreOffice"
                    middle = time.perf_counter()
                    office.one_shot_pdf(document, out, root / "one-shot-profile", 120)
                    ended = time.perf_counter()
                    entry = times.setdefault(document.name, {"warm": [], "one_shot": []})
                    entry["warm"].append(middle - began)
                    entry["one_shot"].append(ended - middle)
        finally:
            warm.close()
    medians = {
        name: {way: round(statistics.median(values), 3) for way, values in entry.items()}
        for name, entry in times.items()
    }
    print(f"warm LibreOffice's start and first document: {start_and_first:.2f} s")
    for name, median in medians.items():
        print(
            f"{name:14} warm {median['warm']:.3f} s   one-shot {median['one_shot']:.3f} s   "
            f"one-shot / warm {median['one_shot'] / median['warm']:.1f} x"
        )
    print(json.dumps({"runs": args.runs, "start_and_first": round(start_and_first, 3), "median": medians}))


if __name__ == "__main__":
    main()
