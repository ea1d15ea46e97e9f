"""bench/doc_figures.py: figure blocks in the docs are found and replaced, and
every block the script produces has its markers in the file it names."""
from __future__ import annotations

import pytest

from tbtest import ROOT, bench_module

DF = bench_module("doc_figures")

TEXT = """intro
<!-- figures:begin table -->
```
old table
```
<!-- figures:end -->
a sentence: <!-- figures:begin inline -->12 KiB<!-- figures:end --> used.
<!-- figures:begin other -->
keep me
<!-- figures:end -->
"""


def test_named_blocks_are_replaced_and_others_kept():
    out = DF.replace_blocks(TEXT, {"table": "\n```\nnew table\n```\n", "inline": "9 KiB"}, "x.md")
    assert "old table" not in out and "```\nnew table\n```" in out
    assert "a sentence: <!-- figures:begin inline -->9 KiB<!-- figures:end --> used." in out
    assert "<!-- figures:begin other -->\nkeep me\n<!-- figures:end -->" in out
    assert out.startswith("intro\n") and out.count("<!-- figures:end -->") == 3


def test_a_block_without_markers_stops_the_script():
    with pytest.raises(SystemExit, match=r"x\.md has no block missing"):
        DF.replace_blocks(TEXT, {"missing": "text"}, "x.md")


@pytest.mark.parametrize("name", list(DF.PRODUCERS))
def test_every_produced_block_has_markers_in_its_file(name):
    path = DF.PRODUCERS[name][0]
    names = [m.group("name") for m in DF.BLOCK.finditer((ROOT / path).read_text())]
    assert names.count(name) == 1, f"{path} should hold exactly one block {name}"
