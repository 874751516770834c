"""Turn the study's ``results.md`` into reStructuredText for the docs (tables are generated, not typed).

Usage: ``python docs/study/make_tables.py docs/study/results.md > docs/study/tables.rst``.
Markdown pipe tables become ``list-table`` directives, ``###`` headings become
rubrics, other lines pass through (emphasis and code spans are the same in both).
"""

from __future__ import annotations

import re
import sys


def _cells(line: str) -> list[str]:
    return [c.strip().replace("**", "").replace("|", "/") for c in line.strip().strip("|").split("|")]


def convert(md: str) -> str:
    out: list[str] = []
    lines = md.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("# ") or line.startswith("## "):
            i += 1
            continue
        if line.startswith("### "):
            out += [f".. rubric:: {line[4:].strip()}", ""]
            i += 1
            continue
        if line.startswith("|"):
            rows = []
            while i < len(lines) and lines[i].startswith("|"):
                if not re.fullmatch(r"\|(\s*:?-+:?\s*\|)+", lines[i].strip()):
                    rows.append(_cells(lines[i]))
                i += 1
            out += [".. list-table::", "   :header-rows: 1", "   :class: study", ""]
            for row in rows:
                out.append("   * - " + (row[0] or " "))
                out += [f"     - {c or ' '}" for c in row[1:]]
            out.append("")
            continue
        line = line.replace("|", "\\|")  # "|x|" would be an rst substitution
        out.append(line.replace("`", "``") if "``" not in line else line)
        i += 1
    return "\n".join(out).rstrip() + "\n"


if __name__ == "__main__":
    with open(sys.argv[1], encoding="utf-8") as f:
        sys.stdout.write(convert(f.read()))
