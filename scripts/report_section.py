"""One marked section of docs/BENCHMARKS.md, replaced in place or appended: how
scripts/bench-broker, bench-package and bench-build each rewrite only their own part."""
from pathlib import Path

REPORT = Path(__file__).resolve().parent.parent / "docs" / "BENCHMARKS.md"


def splice(begin, end, lines):
    """Replaces the text between the markers `begin` and `end` (which `lines` starts and
    ends with) with `lines`, or appends them when the report has no such section."""
    text = REPORT.read_text() if REPORT.exists() else "# Benchmarks\n"
    new = "\n".join(lines)
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        text = head + new + rest.split(end, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + new + "\n"
    REPORT.write_text(text)
