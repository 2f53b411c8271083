"""The demo's samples: made once into the cache, then taken from it; a crash while making them leaves
nothing a later demo would take for complete."""

from __future__ import annotations

from pathlib import Path

import pytest
from immflow.demo import media


def test_the_samples_are_made_once_then_taken_from_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    made: list[Path] = []
    make_samples = media.make_samples

    def counting(folder: Path) -> list[media.Sample]:
        made.append(folder)
        return make_samples(folder)

    monkeypatch.setattr(media, "make_samples", counting)
    first = media.cached_samples(tmp_path)
    second = media.cached_samples(tmp_path)

    assert len(made) == 1
    assert [s.name for s in first] == ["clip.mp4", "report.docx", "slides.pptx", "sunrise.jpg", "sea.png", "holiday.zip"]  # fmt: skip
    assert first == second
    assert all(sample.path.stat().st_size > 0 for sample in second)
    assert [p.name for p in tmp_path.iterdir()] == [second[0].path.parent.name]  # no staging left


def test_samples_a_crash_left_half_made_are_never_taken(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def crash(path: Path) -> None:
        raise RuntimeError("killed while making the documents")

    monkeypatch.setattr(media, "_docx", crash)
    with pytest.raises(RuntimeError):
        media.cached_samples(tmp_path)
    monkeypatch.undo()

    samples = media.cached_samples(tmp_path)

    assert all(sample.path.stat().st_size > 0 for sample in samples)
