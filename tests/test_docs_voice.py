"""Docs, comments and docstrings speak of the product to its users and contributors.

They never speak of how the work was organised (roles, work periods, issue numbers, requests
between people) nor of paths on one particular machine. This scans the README, CONTRIBUTING,
docs/ and the Python sources and lists every hit, so a reader is never sent to a note or a
folder they do not have.
"""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
THIS = Path(__file__).resolve()

# Everywhere: words that only make sense inside the team that built the product.
EVERYWHERE = [
    r"closing[- ]notes?",
    r"\bissue[ #-]{0,2}\d+",
    r"/work/",
    r"/home/",
    r"\.\./shared\b",
    r"\bwork period",
    r"\bthe lead\b(?![ -]time)",
    r"\b(?:perf|performance|tm|sp|extensions|anomaly|editor|run|tasks?)\s+helper\b",
    r"\bthe helper's\b",
    r"\bother helpers?\b",
    r"\bhelpers? (?:may|did|left|stopped|were|was)\b",
    r"\bmay not edit\b",
    r"\bthis file's author\b",
    r"\bteammates?\b",
    r"\btm-requests\b",
    r"\bthe issue\b",
    r"\blent\b",
]
# In prose only (Markdown): code legitimately uses /tmp in examples of tmp_path and speaks of
# an app "session"; docs should not point at a scratch folder or a work session.
DOCS_ONLY = [
    r"/tmp/",
    r"\b(?:first|second|third|this|that|earlier|previous|last) session\b",
    r"\bsession helper\b",
    r"\bthe team\b",
    r"\brequest(?:ed)? (?:by|to|from) the\b",
]


def _compile(patterns):
    return re.compile("|".join(f"(?:{p})" for p in patterns), re.IGNORECASE)


EVERYWHERE_RE = _compile(EVERYWHERE)
DOCS_RE = _compile(EVERYWHERE + DOCS_ONLY)


def scanned_files() -> list[Path]:
    files = [ROOT / "README.md", ROOT / "CONTRIBUTING.md"]
    files += sorted((ROOT / "docs").rglob("*.md"))
    for folder in ("deephtm", "app", "tests", "benchmarks"):
        files += sorted((ROOT / folder).rglob("*.py"))
    return [f for f in files if f.resolve() != THIS]


def hits_in(rel: str, text: str, markdown: bool) -> list[str]:
    pattern = DOCS_RE if markdown else EVERYWHERE_RE
    found = []
    if pattern.search(rel):  # a file named after the work, e.g. a notes folder
        found.append(f"{rel}: the file's own path")
    for number, line in enumerate(text.splitlines(), 1):
        for m in pattern.finditer(line):
            found.append(f"{rel}:{number}: {m.group(0)!r} in {line.strip()[:120]!r}")
    return found


def test_docs_and_comments_speak_of_the_product_only():
    hits = []
    for path in scanned_files():
        if not path.exists():
            continue
        rel = path.relative_to(ROOT).as_posix()
        hits += hits_in(rel, path.read_text(encoding="utf-8"), path.suffix == ".md")
    assert not hits, "development-process words or machine paths:\n" + "\n".join(hits)


def test_the_scan_covers_the_readme_docs_and_sources():
    rels = {p.relative_to(ROOT).as_posix() for p in scanned_files() if p.exists()}
    assert {"README.md", "CONTRIBUTING.md", "docs/performance.md", "docs/results.md"} <= rels
    assert "deephtm/graph/resolve.py" in rels and "tests/helpers.py" in rels
    assert "tests/test_docs_voice.py" not in rels


def test_the_patterns_catch_process_words_and_spare_product_words():
    caught = [
        ("docs/closing-notes/x.md", "Built", True),
        ("docs/a.md", "See the closing note of Issue 6.", True),
        ("docs/a.md", "Measured in the third session by the lead.", True),
        ("docs/a.md", "a script in /work/x.py", True),
        ("docs/a.md", "python /tmp/x.py", True),
        ("tests/t.py", "# this file's author may not edit it", True),
        ("app/p.py", "# the issue #5 asks for 20 Hz", True),
        ("benchmarks/b.py", '"""as the perf helper measured"""', False),
        ("app/run/panel.py", "REFRESH_HZ = 25  # the issue asks for 20 Hz or more", False),
        ("benchmarks/gpu.py", '"""GPU speed (for a lent GPU machine)"""', False),
        ("README.md", "Real data copied from `../shared/data`", True),
    ]
    spared = [
        ("tests/t.py", "from helpers import SINE  # tests/helpers.py", False),
        ("tests/t.py", "assert logged == [50, 100]  # one log across both sessions", False),
        ("app/a.py", 'self.graph_file = self.folder / f"session-{pid}.json"', False),
        ("docs/a.md", "A resumed run continues the training session where it stopped.", True),
        ("docs/a.md", "the lead time of a forecast is 5 steps", True),
        ("docs/a.md", "a small helper function in tests/helpers.py", True),
    ]
    for rel, line, markdown in caught:
        assert hits_in(rel, line, markdown), (rel, line)
    for rel, line, markdown in spared:
        assert not hits_in(rel, line, markdown), (rel, line)
