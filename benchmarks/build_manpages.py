"""Build the man-pages fan-out domain from the Linux man pages on this machine.

Source: the Debian packages ``manpages`` and ``manpages-dev`` (Linux man-pages 6.03),
sections 2 (system calls), 3 (library functions) and 7 (overviews) under /usr/share/man.
Licence: GPL-2+ and others per file (the packages' ``copyright`` file is copied next to the
output as ``LICENSE``).

    items.parquet    page_id ("open(2)"), section, text = the NAME line + the first 400
                     characters of DESCRIPTION (troff markup removed)
    queries.parquet  a user's query table (``retrieval.queries``): query_id = page_id,
                     text = the page's own text, item = page_id (a page is not its own
                     answer), references = the pages its SEE ALSO lists that are items
                     (aliases such as creat(2) → open(2) resolved; pages with < 3 kept)

A ``.so`` page or a symlink (another name of a page) is not an item. Run once:
``python benchmarks/build_manpages.py`` (a few seconds); the output is vendored in
``benchmarks/data/manpages/``.
"""

from __future__ import annotations

import argparse
import gzip
import re
import shutil
from pathlib import Path

import polars as pl

ROOT = Path(__file__).resolve().parent
OUT = ROOT / "data" / "manpages"
SECTIONS = ("2", "3", "7")
REF = re.compile(r"\\fB([\w.+:-]+)\\f[PR]\s*\((\d\w*)\)|^\.BR?\s+\"?([\w.+:-]+)\"?\s+\((\d\w*)\)")
ESCAPES = [(r"\(em", "—"), (r"\(en", "–"), (r"\(aq", "'"), (r"\(dq", '"'), (r"\(lq", '"'),
           (r"\(rq", '"'), (r"\-", "-"), (r"\e", "\\"), (r"\&", ""), (r"\~", " "),
           (r"\ ", " "), (r"\:", ""), (r"\|", "")]
LAYOUT = {".PP", ".P", ".LP", ".TP", ".IP", ".nf", ".fi", ".RS", ".RE", ".in", ".sp", ".br",
          ".ad", ".na", ".ne", ".EX", ".EE", ".TS", ".TE", ".ft", ".ti", ".ce", ".UR", ".UE",
          ".MT", ".ME", ".SS"}


def clean(line: str) -> str:
    """One troff line as plain text: font macros' arguments joined, escapes replaced."""
    for esc, rep in ESCAPES:
        line = line.replace(esc, rep)
    line = re.sub(r"\\f(\[[^\]]*\]|.)", "", line)
    line = re.sub(r"\\\[(aq|cq)\]", "'", line)
    line = re.sub(r"\\\[[^\]]*\]", "", line)
    line = re.sub(r"\\\*\(..|\\\*.", "", line)
    line = re.sub(r"\\s[-+]?\d|\\m\[[^\]]*\]|\\%", "", line)       # size, colour, hyphenation
    if line.startswith("."):
        macro, _, rest = line.partition(" ")
        if macro in LAYOUT or macro.startswith('.\\"'):
            return ""
        parts = re.findall(r'"[^"]*"|\S+', rest)
        args = [p.strip('"') for p in parts]
        alternating = macro in {".BR", ".RB", ".IR", ".RI", ".BI", ".IB"}
        return ("".join(args) if alternating else " ".join(args)).strip()
    return line.strip()


def sections(text: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    current = None
    for line in text.splitlines():
        if line.startswith('.\\"'):
            continue
        if line.startswith(".SH"):
            current = line[3:].strip().strip('"').upper()
            out[current] = []
        elif current is not None:
            out[current].append(line)
    return out


def parse(path: Path) -> dict | None:
    page_id = f"{path.name.rsplit('.', 2)[0]}({path.parent.name[3:]})"
    if path.is_symlink():                                          # another name of a page
        name = path.resolve().name.rsplit(".", 2)
        return {"alias": page_id, "target": f"{name[0]}({name[1]})"}
    raw = gzip.open(path, "rt", errors="replace").read()
    if raw.lstrip().startswith(".so"):
        target = raw.split()[1]                                    # man2/open.2
        name = Path(target).name.rsplit(".", 1)
        return {"alias": page_id, "target": f"{name[0]}({name[1]})"}
    sec = sections(raw)
    name = " ".join(filter(None, (clean(x) for x in sec.get("NAME", []))))
    desc = " ".join(filter(None, (clean(x) for x in sec.get("DESCRIPTION", []))))
    if not name:
        return None
    refs = []
    for line in sec.get("SEE ALSO", []):
        for m in REF.finditer(line):
            nm, num = (m.group(1), m.group(2)) if m.group(1) else (m.group(3), m.group(4))
            refs.append(f"{nm}({num})")
    return {"page_id": page_id, "section": path.parent.name[3:],
            "text": (name + ". " + desc)[:400 + len(name)].strip(), "see_also": refs}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--man", default="/usr/share/man")
    ap.add_argument("--min-references", type=int, default=3)
    args = ap.parse_args()
    pages, aliases = [], {}
    for s in SECTIONS:
        for path in sorted(Path(args.man, f"man{s}").glob("*.gz")):
            rec = parse(path)
            if rec is None:
                continue
            if "alias" in rec:
                aliases[rec["alias"]] = rec["target"]
            else:
                pages.append(rec)
    ids = {p["page_id"] for p in pages}
    OUT.mkdir(parents=True, exist_ok=True)
    items = pl.DataFrame([{k: p[k] for k in ("page_id", "section", "text")} for p in pages])
    items.write_parquet(OUT / "items.parquet")
    queries = []
    for p in pages:
        refs = list(dict.fromkeys(aliases.get(r, r) for r in p["see_also"]))
        refs = [r for r in refs if r in ids and r != p["page_id"]]
        if len(refs) >= args.min_references:
            queries.append({"query_id": p["page_id"], "text": p["text"], "item": p["page_id"],
                            "references": refs})
    pl.DataFrame(queries).write_parquet(OUT / "queries.parquet")
    shutil.copy("/usr/share/doc/manpages/copyright", OUT / "LICENSE")
    print(f"{len(items)} pages ({len(aliases)} aliases resolved), {len(queries)} queries with ≥ "
          f"{args.min_references} SEE ALSO pages → {OUT}")


if __name__ == "__main__":
    main()
