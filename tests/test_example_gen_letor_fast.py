"""The numpy fast path of the LETOR reader gives exactly what the general (pyarrow token) path gives.

``formats.read_letor`` splits a chunk with numpy when every line is plain ``label idx:value ...``
ASCII (``_letor_tokens_fast``) and with ``pyarrow.compute`` otherwise (``_letor_tokens``). Each
chunk below is read both ways: the columns, lines and dead letter must be equal, and the fast
path must have been taken exactly where it claims to apply.
"""

from __future__ import annotations

import pytest

from components.elwc_example_gen import formats
from components.elwc_example_gen.formats import FormatOptions
from modules.features import load_feature_set

FEATURES = load_feature_set()
OPTIONS = FormatOptions()
KEYS = list(OPTIONS.letor_map(FEATURES))

CLEAN = [
    # missing indices, out-of-order and repeated indices (the last wins), an index not in the map
    "2 qid:q1 1:3 2:0.5 4:1e-3 # docid = d1\n1 qid:q1 3:7 1:2 1:4 99:5\n0 qid:q2 2:-1.5 5:nan 3:2\n",
    # CRLF, tabs, blank and comment-only lines, a qid after the features, two qids (the last wins)
    "1 1:2\tqid:q7 2:3.25\r\n\r\n# only a comment\n   \n3 qid:q8 2:1 qid:q9 # docid = x # y\n",
    # values typed later from text: inf, a non-integer for an INT feature, a word
    "1 qid:q1 1:inf 2:1.5 4:+2\n2 qid:q1 1:2 3:word\n",
    # no trailing newline, no query id on a line
    "4 qid:q3 1:1\n1 2:5",
    # missing-value words (the values are then parsed after a null mask, as in the general path)
    "1 qid:q1 1:NA 2:null 3:2.5\n",
]
GENERAL_ONLY = [
    "1 qid:q1 oops 1:2\n",  # a token without ':' (dead letter)
    "1 qid:q1 :3 1:2\n",  # an empty index
    "1 qid:q1 1:\n",  # an empty value
    "1 qid:q1 01:2\n",  # a leading zero: not index 1
    "1 qid:q1 1:2:3\n",  # two colons
    "1 qid:q1 foo:3 1:2\n",  # an index that is not a number
    "1 qid:q\u00e9 1:2\n",  # a non-ASCII byte outside the comment
    "1 qid:q1 1:2\x0b2:3\n",  # a vertical tab
    "3:1 qid:q1 1:2\n",  # a label holding ':'
]


def _read(text: str, fast: bool, monkeypatch) -> formats.RawFile:
    if not fast:
        monkeypatch.setattr(formats, "_letor_tokens_fast", lambda *args: None)
    raw = formats.read_letor(text.encode(), "f.txt", OPTIONS, FEATURES, first_line=5)
    monkeypatch.undo()
    return raw


def _fast_applies(text: str) -> bool:
    parsed = formats.LetorText.parse(text.encode())
    return formats._letor_tokens_fast(parsed, {key: 0 for key in KEYS}) is not None


@pytest.mark.parametrize("text", CLEAN + GENERAL_ONLY)
def test_fast_and_general_letor_paths_read_the_same(text, monkeypatch):
    assert _fast_applies(text) == (text in CLEAN)
    fast, general = _read(text, True, monkeypatch), _read(text, False, monkeypatch)
    assert fast.num_rows == general.num_rows and fast.lines.tolist() == general.lines.tolist()
    assert fast.columns.keys() == general.columns.keys()
    for name in general.columns:
        assert fast.columns[name].equals(general.columns[name]), name
    assert fast.dead_letter == general.dead_letter
    assert [fast.raw_rows(i) for i in range(fast.num_rows)] == [general.raw_rows(i) for i in range(general.num_rows)]


def test_fast_letor_path_reads_values_by_index():
    raw = formats.read_letor(CLEAN[0].encode(), "f.txt", OPTIONS, FEATURES)
    by_index = {key: raw.columns[name].to_pylist() for key, name in OPTIONS.letor_map(FEATURES).items()}
    assert raw.columns["label"].to_pylist() == ["2", "1", "0"]
    assert raw.columns["query_id"].to_pylist() == ["q1", "q1", "q2"]
    assert raw.columns["doc_id"].to_pylist() == ["d1", None, None]
    assert by_index["1"] == [3.0, 4.0, None]  # absent on line 3; the last of two on line 2
    assert by_index["2"] == ["0.5", None, "-1.5"]  # an INT feature: left as text, typed (and refused) later
    assert by_index["3"] == [None, 7.0, 2.0] and by_index["4"] == [0.001, None, None]
    assert by_index["5"] == [None, None, None]  # nan is missing
