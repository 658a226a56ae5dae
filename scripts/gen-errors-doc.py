#!/usr/bin/env python3
"""Regenerates the catalogue table of docs/errors.md from crates/model/src/error.rs.

The test `every_code_is_documented_in_errors_md` fails when the two disagree."""
import re, pathlib

root = pathlib.Path(__file__).resolve().parent.parent
src = (root / "crates/model/src/error.rs").read_text()

def block(name, end):
    return src.split(f"pub fn {name}")[1].split(f"pub fn {end}")[0] if end else src.split(f"pub fn {name}")[1].split("impl std::fmt::Display")[0]

def arms(text):
    out = {}
    for m in re.finditer(r'((?:ErrorCode::\w+\s*\|\s*)*ErrorCode::\w+)\s*=>\s*\{?\s*("(?:[^"\\]|\\.)*"|\d+)', text, re.S):
        for v in re.findall(r'ErrorCode::(\w+)', m.group(1)):
            out[v] = m.group(2).strip('"')
    return out

codes, status, types, meaning = arms(block("as_str", "status")), arms(block("status", "error_type")), arms(block("error_type", "meaning")), arms(block("meaning", None))
order = re.findall(r'ErrorCode::(\w+),', src.split("pub const ALL")[1].split("];")[0])
rows = [f"| `{codes[v]}` | {status[v]} | `{types[v]}` | {meaning[v]} |" for v in order]
doc = (root / "docs/errors.md").read_text()
head, rest = doc.split("| Code | HTTP | Type | Meaning |\n|---|---|---|---|\n", 1)
tail = rest[rest.index("\n\n"):]
(root / "docs/errors.md").write_text(head + "| Code | HTTP | Type | Meaning |\n|---|---|---|---|\n" + "\n".join(rows) + tail)
print(f"{len(rows)} codes")
