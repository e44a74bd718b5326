"""``ltr init``: a starting ``schema.pbtxt`` and ``config.yaml`` from a sample of the user's data.

Reads the first rows of the data (see :mod:`pipeline.data_sample`) and infers, per column:

* the type from the values (integers, numbers, else strings);
* the role from the name and the format: ``qid``/``query_id``/... -> query id,
  ``label``/``relevance``/``rating``/... -> label (in that order of preference),
  ``doc_id``/``item_id``/... -> document id, ``position``/``rank`` -> position;
  LETOR indices -> ``f<i>`` document features; a numeric column constant within
  every list (but not across lists) -> context feature, else document feature;
* a default: the median (LETOR: 0 where the index is sometimes absent, as in
  SVMlight files), stated in a comment beside the observed range and missing rate;
* a domain: the observed range for the label, ``min: 0`` for non-negative features.

Columns that cannot help a model (constant, always empty, or strings with nearly one
value per row) are written commented out, with the reason. The files are meant to be
read and edited; comments say what each tag does.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import math
import os
import re
import statistics
from collections import Counter
from pathlib import Path

from pipeline.data_sample import (
    ELWC_LIST,
    FORMATS,
    LETOR_DOCID,
    LETOR_LABEL,
    LETOR_QID,
    Sample,
    file_format,
    flatten_lists,
    is_missing,
    read_sample,
)

SCHEMA_FILE = "schema.pbtxt"
CONFIG_FILE = "config.yaml"
_SPAN_DIR = re.compile(r"^span-(\d+)$")
_INT = re.compile(r"^[+-]?\d+$")
# Normalised column names (lower case, letters and digits only) per role, in order of preference.
_QUERY_ID_NAMES = (
    "qid",
    "queryid",
    "query",
    "searchid",
    "searchsessionid",
    "searchsession",
    "sessionid",
    "session",
    "requestid",
    "listid",
)
_LABEL_NAMES = (
    ("label",),
    ("relevance", "relevancelabel", "relevancegrade", "rel"),
    ("rating", "grade", "judgment", "judgement", "target", "utility"),
)
_DOC_ID_NAMES = ("docid", "documentid", "doc", "itemid", "productid", "sku", "url")
_POSITION_NAMES = ("position", "pos", "rank", "displayposition", "slot")
_NOT_DATA = (".md", ".yaml", ".yml", ".pbtxt", ".py", ".sh")
_MIN_LISTS_FOR_CONTEXT = 3  # lists with >= 2 documents needed before calling a column a context feature
_FREE_TEXT_DISTINCT = 0.5  # strings with more distinct values per row than this are left out


class InitError(ValueError):
    """``ltr init`` cannot proceed; nothing was written. The message names the path or column."""


@dataclasses.dataclass
class Column:
    source: str  # the column name in the files (LETOR: the feature index)
    name: str  # the schema feature name
    dtype: str  # INT | FLOAT | BYTES
    role: str = "document"
    default: str | None = None
    transform: str | None = None
    domain: str = ""
    note: str = ""
    left_out: str = ""  # why the feature is written commented out
    missing_rate: float = 0.0


@dataclasses.dataclass
class Project:
    data_dir: str
    fmt: str
    input_pattern: str
    sample: Sample
    columns: list[Column]
    list_sizes: list[int]
    notes: list[str]
    files: list[str] = dataclasses.field(default_factory=list)  # every file the pattern matches (newest span)
    documents_field: str | None = None  # nested list exports: the field holding each row's documents


# ---- finding the files -------------------------------------------------------------------------
def find_input(data_dir: str, fmt: str = "auto") -> tuple[str, str, list[str]]:
    """(format, input pattern relative to data_dir, files to sample, newest span first)."""
    root = Path(data_dir)
    if not root.is_dir():
        raise InitError(
            f"data folder '{data_dir}' does not exist" if not root.exists() else f"'{data_dir}' is not a folder"
        )
    found: list[tuple[Path, str]] = []
    for path in sorted(root.rglob("*")):
        if path.is_file() and not any(part.startswith((".", "_")) for part in path.relative_to(root).parts):
            detected = file_format(str(path), fmt)
            implied = file_format(str(path))
            if fmt == "auto" and implied is None:  # a forced --format takes any file
                continue
            if path.suffix.lower() in _NOT_DATA:
                continue
            found.append((path, detected))
    if not found:
        known = ", ".join(sorted({ext for ext in _extensions()}))
        raise InitError(f"no data files under '{data_dir}' (looked for {known}, optionally .gz)")
    formats = Counter(detected for _, detected in found)
    chosen = formats.most_common(1)[0][0]
    files = [p for p, detected in found if detected == chosen]
    suffixes = Counter(_suffix(p) for p in files)
    suffix = suffixes.most_common(1)[0][0]
    files = [p for p in files if _suffix(p) == suffix]
    spans = {}
    for path in files:
        top = path.relative_to(root).parts[0]
        match = _SPAN_DIR.match(top)
        if match and len(path.relative_to(root).parts) == 2:
            spans.setdefault(int(match.group(1)), []).append(path)
    if spans:
        pattern = f"span-{{SPAN}}/*{suffix}"
        ordered = [p for span in sorted(spans, reverse=True) for p in sorted(spans[span])]
    else:
        parents = Counter(p.parent for p in files)
        parent = parents.most_common(1)[0][0]
        relative = parent.relative_to(root)
        pattern = f"*{suffix}" if str(relative) == "." else f"{relative.as_posix()}/*{suffix}"
        ordered = sorted(p for p in files if p.parent == parent)
    return chosen, pattern, [str(p) for p in ordered]


def _extensions() -> list[str]:
    from pipeline.data_sample import EXTENSIONS

    return list(EXTENSIONS)


def _suffix(path: Path) -> str:
    """The extension (with a trailing .gz) of a data file."""
    name = path.name.lower()
    gz = name.endswith(".gz")
    base = name.removesuffix(".gz")
    ext = next((e for e in _extensions() if base.endswith(e)), Path(base).suffix)
    original = path.name[len(path.name) - len(ext) - (3 if gz else 0) :]
    return original


def read_project_sample(files: list[str], fmt: str, max_rows: int) -> Sample:
    sample = Sample(fmt, {})
    for path in files:
        if sample.num_rows >= max_rows:
            break
        sample.extend(read_sample(path, fmt, max_rows - sample.num_rows))
    return sample


# ---- inference --------------------------------------------------------------------------
def _names(sources: list[str], limit: int = 12) -> str:
    return ", ".join(sources[:limit]) + (f", ... ({len(sources)} in all)" if len(sources) > limit else "")


def _normalise(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def feature_name(source: str, taken: set[str]) -> str:
    """A schema feature name for a column: lower case letters, digits and underscores."""
    name = re.sub(r"[^A-Za-z0-9]+", "_", source).strip("_").lower() or "feature"
    if name[0].isdigit():
        name = f"f{name}"
    candidate, n = name, 2
    while candidate in taken:
        candidate, n = f"{name}_{n}", n + 1
    taken.add(candidate)
    return candidate


def _numbers(values: list, native: bool) -> tuple[str, list[float]] | None:
    """(INT|FLOAT, the non-missing values as floats), or None for a string column."""
    present = [v for v in values if not is_missing(v)]
    if native:
        if all(isinstance(v, bool | int) for v in present):
            return "INT", [float(v) for v in present]
        if all(isinstance(v, int | float) and not isinstance(v, bool) for v in present):
            return "FLOAT", [float(v) for v in present]
        return None
    texts = [str(v).strip() for v in present]
    if all(_INT.match(t) for t in texts):
        return "INT", [float(t) for t in texts]
    try:
        floats = [float(t) for t in texts]
    except ValueError:
        return None
    if not all(math.isfinite(f) for f in floats):
        return None
    return "FLOAT", floats


def _format_number(value: float, dtype: str) -> str:
    if dtype == "INT" or float(value).is_integer():
        return str(int(round(value)))
    return f"{value:.6g}"


def _lists(sample: Sample, qid_source: str) -> dict[str, list[int]]:
    """Query id -> row indices of its documents in the sample."""
    groups: dict[str, list[int]] = {}
    for i, qid in enumerate(sample.columns.get(qid_source, [])):
        if not is_missing(qid):
            groups.setdefault(str(qid), []).append(i)
    return groups


def _constant_within_lists(values: list, lists: dict[str, list[int]]) -> bool:
    """True if the column has one value within every list of >= 2 documents (and enough such lists)."""
    multi = [rows for rows in lists.values() if len(rows) >= 2]
    if len(multi) < _MIN_LISTS_FOR_CONTEXT:
        return False
    for rows in multi:
        if len({str(values[i]) for i in rows}) > 1:
            return False
    return True


def _pick(sources: list[str], names: tuple[str, ...], exclude: set[str]) -> str | None:
    by_norm = {}
    for source in sources:
        by_norm.setdefault(_normalise(source), source)
    for name in names:
        if name in by_norm and by_norm[name] not in exclude:
            return by_norm[name]
    return None


def infer_roles(sample: Sample, query_id: str | None, label: str | None) -> dict[str, str]:
    """Source column -> role for the special columns (query id, label, doc id, position)."""
    sources = [s for s in sample.header if s != ELWC_LIST]
    if sample.format == "letor":
        roles = {LETOR_QID: "query_id", LETOR_LABEL: "label"}
        if LETOR_DOCID in sample.columns:
            roles[LETOR_DOCID] = "doc_id"
        return roles
    roles: dict[str, str] = {}
    for wanted, given in (("query_id", query_id), ("label", label)):
        if given is not None and given not in sample.columns:
            raise InitError(f"--{wanted.replace('_', '-')} '{given}': no such column; columns: {_names(sources)}")
        if given:
            roles[given] = wanted
    if "query_id" not in roles.values():
        found = _pick(sources, _QUERY_ID_NAMES, set(roles)) or next(
            (s for s in sources if _normalise(s).endswith("queryid") and s not in roles), None
        )
        if found:
            roles[found] = "query_id"
        elif sample.format != "elwc":
            raise InitError(
                f"no query id column among {_names(sources)} (looked for {', '.join(_QUERY_ID_NAMES)}); "
                "name it with --query-id COLUMN"
            )
    if "label" not in roles.values():
        for names in _LABEL_NAMES:
            found = _pick(sources, names, set(roles))
            if found and _numbers(sample.columns[found], found in sample.numeric):
                roles[found] = "label"
                break
        else:
            raise InitError(
                f"no numeric label column among {_names(sources)} (looked for "
                f"{', '.join(n for names in _LABEL_NAMES for n in names)}); name it with --label COLUMN"
            )
    for role, names in (("doc_id", _DOC_ID_NAMES), ("position", _POSITION_NAMES)):
        found = _pick(sources, names, set(roles))
        if found:
            roles[found] = role
    return roles


def infer_columns(sample: Sample, query_id: str | None = None, label: str | None = None) -> list[Column]:
    roles = infer_roles(sample, query_id, label)
    qid_source = next((s for s, r in roles.items() if r == "query_id"), ELWC_LIST)
    lists = _lists(sample, qid_source)
    letor = sample.format == "letor"
    taken: set[str] = set()
    columns: list[Column] = []
    sources = [s for s in sample.header if s != ELWC_LIST]
    if sample.format == "elwc" and qid_source == ELWC_LIST:
        columns.append(
            Column(
                "",
                feature_name("query_id", taken),
                "BYTES",
                "query_id",
                note="not in the ELWC context: ExampleGen gives each list an id from its bytes",
            )
        )
    if letor:  # every index from 1 to the largest seen, so that schema order = LETOR index order
        indices = sorted(int(s) for s in sources if s.isdigit())
        special = [s for s in sources if not s.isdigit()]
        sources = special + [str(i) for i in range(1, (indices[-1] if indices else 0) + 1)]
    for source in sources:
        values = sample.columns.get(source, [None] * sample.num_rows)
        missing = sum(is_missing(v) for v in values)
        rate = missing / sample.num_rows if sample.num_rows else 1.0
        role = roles.get(source)
        if letor:
            base = (
                f"f{source}" if source.isdigit() else {LETOR_QID: "query_id", LETOR_DOCID: "doc_id"}.get(source, source)
            )
        else:
            base = source
        name = feature_name(base, taken)
        numbers = _numbers(values, source in sample.numeric)
        if role == "query_id":
            columns.append(Column(source, name, "BYTES", role, missing_rate=rate))
            continue
        if role == "doc_id":
            columns.append(Column(source, name, "BYTES", role, missing_rate=rate))
            continue
        column = _model_column(source, name, values, numbers, rate, lists, letor)
        if sample.format == "elwc" and column.role in ("context", "document"):
            # ELWC: where the feature lives decides; ExampleGen drops a feature found on the other side.
            column.role = "context" if source in sample.context else "document"
        if role in ("label", "position"):
            column.role, column.default, column.transform = role, None, None
            if numbers is None:
                raise InitError(f"column '{source}' ({role}) holds non-numeric values, e.g. {_example(values)!r}")
            low, high = min(numbers[1], default=0), max(numbers[1], default=0)
            kind = "int_domain" if numbers[0] == "INT" else "float_domain"
            if role == "label":
                column.domain = (
                    f"{kind} {{ min: {_format_number(low, numbers[0])} max: {_format_number(high, numbers[0])} }}"
                )
                column.note = (
                    f"relevance grade, seen {_format_number(low, numbers[0])} .. {_format_number(high, numbers[0])}"
                )
            else:
                column.domain = f"{kind} {{ min: 0 }}" if low >= 0 else ""
                column.note = "display position: orders the documents of a list (not a model input)"
            column.left_out = ""
        columns.append(column)
    return columns


def _example(values: list):
    return next((v for v in values if not is_missing(v)), None)


def _model_column(source, name, values, numbers, rate, lists, letor) -> Column:
    seen = f"in {1 - rate:.0%} of rows"
    if numbers is None:
        present = [str(v) for v in values if not is_missing(v)]
        distinct = len(set(present))
        column = Column(source, name, "BYTES", transform="vocabulary", default="", missing_rate=rate)
        column.note = f"string, {distinct} distinct value(s) {seen}; missing -> empty string (own vocabulary entry)"
        if not present:
            column.left_out = "always empty in the sample"
        elif distinct > 50 and distinct > _FREE_TEXT_DISTINCT * len(present):
            column.left_out = f"{distinct} distinct strings in {len(present)} rows: an identifier or free text"
        elif distinct == 1:
            column.left_out = f"always '{present[0]}' in the sample"
        if _constant_within_lists(values, lists):
            column.role = "context"
        return column
    dtype, floats = numbers
    column = Column(source, name, dtype, missing_rate=rate)
    if not floats:
        column.default, column.transform = "0", "log1p"
        column.note = "never present in the sample; missing -> 0"
        if not letor:
            column.left_out = "always empty in the sample"
        return column
    low, high = min(floats), max(floats)
    median = statistics.median(floats)
    if letor and rate > 0:
        column.default = "0"
        how = "0: an absent LETOR index is 0 (the SVMlight convention)"
    else:
        column.default = _format_number(round(median) if dtype == "INT" else median, dtype)
        how = f"{column.default} (the median)"
    column.transform = "passthrough" if high - low <= 1 else "log1p"
    column.note = (
        f"seen {_format_number(low, dtype)} .. {_format_number(high, dtype)} {seen}, "
        f"median {_format_number(median, dtype)}; missing -> {how}"
    )
    if low >= 0:
        column.domain = f"{'int' if dtype == 'INT' else 'float'}_domain {{ min: 0 }}"
    if low == high:
        column.note += "; constant in the sample"
        if not letor:  # LETOR keeps every index: the schema order is the index order
            column.left_out = f"always {_format_number(low, dtype)} in the sample"
    if _constant_within_lists(values, lists) and low != high:
        column.role = "context"
    return column


# ---- writing --------------------------------------------------------------------------------
_SCHEMA_HEADER = """\
# Ranking schema written by `ltr init` from {rows:,} rows of {files} file(s) under
#   {data_dir}
# on {date}. Review it: the roles, types, defaults and transforms below are guesses.
#
# One `feature` per input column used; `annotation.tag` strings say how it is used:
#   role:query_id    the list key (one per list; BYTES). Exactly one.
#   role:label       graded relevance of a document (INT or FLOAT). Exactly one.
#   role:doc_id      document identifier, kept in the records, not a model input.
#   role:position    display position, orders the documents of a list; not a model input.
#   role:context     a query/user feature: one value per list.
#   role:document    a document feature: one value per document.
#   default:V        the value used where the feature is missing (needed by context/document features).
#   transform:T      log1p       sign(x)*log(1+|x|), the default for numbers (counts, prices, heavy tails)
#                    passthrough the value as is (already on a small scale, e.g. 0..1)
#                    zscore      (x - mean) / std over the data
#                    bucketize   quantile bucket id (tag buckets:N, default 10), embedded by the model
#                    vocabulary  strings -> ids (tag oov:N, default 1 out-of-vocabulary bucket)
# int_domain / float_domain bound the accepted values: a row outside them is set aside
# as a bad row (see examples.max_bad_row_fraction). To drop a feature, delete its block;
# blocks written as comments were left out for the reason given.
"""


def schema_text(project: Project) -> str:
    sample = project.sample
    lines = [
        _SCHEMA_HEADER.format(
            rows=sample.num_rows,
            files=len(sample.files),
            data_dir=project.data_dir,
            date=datetime.date.today().isoformat(),
        )
    ]
    for column in project.columns:
        where = f"from {_from(project, column)}"
        comment = "; ".join(x for x in (where, column.note) if x)
        block = ["feature {", f'  name: "{column.name}"', f"  type: {column.dtype}"]
        if column.domain:
            block.append(f"  {column.domain}")
        tags = [f"role:{column.role}"]
        if column.default is not None:
            tags.append(f"default:{column.default}")
        if column.transform:
            tags.append(f"transform:{column.transform}")
        block.append("  annotation { " + " ".join(f'tag: "{t}"' for t in tags) + " }")
        block.append("}")
        if column.left_out:
            lines.append(f"# LEFT OUT ({column.left_out}); {comment}")
            lines.extend("# " + line for line in block)
        else:
            lines.append(f"# {comment}" if comment else "#")
            lines.extend(block)
    return "\n".join(lines) + "\n"


def _yaml_string(text: str) -> str:
    import json

    return json.dumps(text)  # a JSON string is a valid YAML string


def config_text(project: Project, out_dir: str, schema_path: str) -> str:
    sample = project.sample
    used = [c for c in project.columns if not c.left_out]
    renamed = {c.name: c.source for c in used if c.source and c.name != c.source and project.fmt != "letor"}
    if project.fmt == "elwc":
        renamed = {}
    home = os.path.join(out_dir, "ltr-home")
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", Path(out_dir).name).strip("-.") or "ltr"
    sizes = sorted(project.list_sizes) or [1]
    p90 = sizes[min(len(sizes) - 1, int(0.9 * len(sizes)))]
    list_size = max(2, min(200, p90))
    columns_yaml = "\n".join(f"    {k}: {_yaml_string(v)}" for k, v in renamed.items())
    lines = [
        f"# Written by `ltr init` from {sample.num_rows:,} rows of {len(sample.files)} file(s) on "
        f"{datetime.date.today().isoformat()}.",
        "# Run: ltr run --config THIS_FILE. Keys not set here take their defaults from",
        "# pipeline/default_config.yaml (README: Configuration); command-line flags override both.",
        f"pipeline_name: {name}",
        f"data_root: {_yaml_string(project.data_dir)}",
        f"schema_path: {_yaml_string(schema_path)}",
        "# Everything the runs write: artifacts, the MLMD database, the model registry.",
        f"pipeline_root: {_yaml_string(os.path.join(home, 'pipeline'))}",
        f"metadata_path: {_yaml_string(os.path.join(home, 'metadata.sqlite'))}",
        f"registry_root: {_yaml_string(os.path.join(home, 'registry'))}",
        "",
        "examples:",
        "  # Files read, relative to data_root: {SPAN} picks the newest span-<N> folder (or --span N).",
        f"  input_pattern: {_yaml_string(project.input_pattern)}",
        f"  format: {project.fmt}",
    ]
    if project.documents_field:
        lines.append(
            f"  documents_field: {_yaml_string(project.documents_field)}"
            + "    # one row per list: the field holding its documents (an array of objects)"
        )
    if renamed:
        lines += ["  # schema feature -> column name in the files, where they differ:", "  columns:", columns_yaml]
    else:
        lines.append("  columns: {}                 # schema feature -> column name in the files, where they differ")
    if project.fmt == "letor":
        lines.append(
            "  letor_features: {}          # {}: context/document features in schema order are LETOR indices 1, 2, ..."
        )
    lines += [
        f"  max_list_size: {max(200, sizes[-1])}"
        + f"          # documents kept per list (the sample's longest list: {sizes[-1]})",
        "  max_bad_row_fraction: 0.01  # more bad rows than this fails the run (they are listed in dead_letter/)",
        "",
        "training:",
        f"  list_size: {list_size}"
        + " " * 14
        + f"# documents per list in training: the sample's 90th percentile ({p90})",
        "",
        "evaluation:",
        "  # The blessing gate, on the test split: a model is registered when it beats the trivial",
        "  # ranker (the logged order, or a random order without positions) by min_lift and stays",
        "  # within max_regression of the version the registry serves. min_value (off) adds an",
        "  # absolute floor once you know what a good model scores on this data.",
        "  metric: ndcg_10",
        "  min_lift: 0.01",
        "  max_regression: 0.01",
        "  min_value: null",
        "",
        "transform:",
        "  overrides: {}                 # feature -> transform, over the schema's transform: tags",
    ]
    return "\n".join(lines) + "\n"


def summary_lines(project: Project) -> list[str]:
    sample = project.sample
    sizes = sorted(project.list_sizes)
    used = [c for c in project.columns if not c.left_out]
    by_role = Counter(c.role for c in used)
    lines = [
        f"Read {sample.num_rows:,} rows from {len(sample.files)} file(s) ({project.fmt}) under {project.data_dir}",
        f"  input pattern: {project.input_pattern}",
    ]
    if sizes:
        lines.append(
            f"  lists: {len(sizes):,}; documents per list: min {sizes[0]}, median {statistics.median(sizes):g}, "
            f"mean {sum(sizes) / len(sizes):.1f}, max {sizes[-1]}"
        )
    label = next(c for c in project.columns if c.role == "label")
    values = [v for v in sample.columns[label.source] if not is_missing(v)]
    if label.dtype == "INT":
        counts = Counter(int(float(v)) for v in values)
        shares = ", ".join(f"{k}: {n / len(values):.1%}" for k, n in sorted(counts.items()))
    else:
        floats = sorted(float(v) for v in values)
        shares = f"min {floats[0]:g}, median {statistics.median(floats):g}, max {floats[-1]:g}" if floats else "none"
    lines.append(f"  label '{label.name}' (from {_from(project, label)}): {shares}")
    for role in ("query_id", "doc_id", "position"):
        column = next((c for c in used if c.role == role), None)
        if column is not None:
            lines.append(f"  {role.replace('_', ' ')}: '{column.name}' (from {_from(project, column)})")
    lines.append(
        f"  model features: {by_role['context']} context, {by_role['document']} document"
        + (
            f"; left out: {', '.join(c.name for c in project.columns if c.left_out)}"
            if len(used) < len(project.columns)
            else ""
        )
    )
    missing = sorted(((c.missing_rate, c.name) for c in used if c.missing_rate > 0), reverse=True)
    if missing:
        shown = ", ".join(f"{name} {rate:.1%}" for rate, name in missing[:8])
        lines.append(f"  missing values in {len(missing)} feature(s): {shown}{', ...' if len(missing) > 8 else ''}")
    else:
        lines.append("  missing values: none in the sample")
    lines.extend(f"  note: {note}" for note in project.notes)
    return lines


def _from(project: Project, column: Column) -> str:
    if project.fmt == "letor":
        return {LETOR_QID: "qid:", LETOR_LABEL: "the leading label", LETOR_DOCID: "# docid = comments"}.get(
            column.source, f"index {column.source}"
        )
    return f"'{column.source}'" if column.source else "no column: generated per list"


# ---- the command ------------------------------------------------------------------------------
def build_project(
    data_dir: str, fmt: str = "auto", sample_rows: int = 20_000, query_id: str | None = None, label: str | None = None
) -> Project:
    data_dir = str(Path(data_dir).resolve())
    if sample_rows < 1:
        raise InitError(f"--sample-rows must be >= 1, got {sample_rows}")
    if fmt != "auto" and fmt not in FORMATS:
        raise InitError(f"unknown format '{fmt}'; expected auto or one of {', '.join(FORMATS)}")
    chosen, pattern, files = find_input(data_dir, fmt)
    sample = read_project_sample(files, chosen, sample_rows)
    if not sample.num_rows:
        raise InitError(f"the {len(files)} {chosen} file(s) matching '{pattern}' under '{data_dir}' hold no rows")
    documents_field = find_documents_field(sample)
    if documents_field:  # one row per list: infer from its documents, the row's fields beside each
        sample = flatten_lists(sample, documents_field)
    columns = infer_columns(sample, query_id, label)
    qid = next((c for c in columns if c.role == "query_id"), None)
    lists = _lists(sample, qid.source if qid and qid.source else ELWC_LIST)
    notes = []
    if not any(c.role in ("context", "document") and not c.left_out for c in columns):
        raise InitError(f"no usable feature column in {_names(sample.header)}: every other column was left out")
    skipped = len(files) - len(sample.files)
    if skipped > 0:
        notes.append(f"{skipped} more file(s) not read: the sample stopped at {sample_rows:,} rows (--sample-rows)")
    sizes = [len(rows) for rows in lists.values()]
    return Project(data_dir, chosen, pattern, sample, columns, sizes, notes, files, documents_field)


def find_documents_field(sample: Sample) -> str | None:
    """The column of a JSON Lines / Parquet sample whose values are all arrays of objects (nested list exports)."""
    if sample.format not in ("jsonl", "parquet"):
        return None
    for name in sample.header:
        values = [v for v in sample.columns[name] if not is_missing(v)]
        if values and all(_is_list_of_objects(v) for v in values):
            return name
    return None


def _is_list_of_objects(value) -> bool:
    if isinstance(value, str):  # JSON Lines samples keep nested values as JSON text
        if not value.lstrip().startswith("["):
            return False
        try:
            value = json.loads(value)
        except ValueError:
            return False
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)


def init_project(
    data_dir: str,
    out_dir: str,
    fmt: str = "auto",
    sample_rows: int = 20_000,
    force: bool = False,
    query_id: str | None = None,
    label: str | None = None,
    out=None,
) -> Project:
    """Writes ``schema.pbtxt`` and ``config.yaml`` into ``out_dir``; prints a summary."""
    import sys

    out = out or sys.stdout
    out_path = Path(out_dir).resolve()
    targets = [out_path / SCHEMA_FILE, out_path / CONFIG_FILE]
    existing = [str(t) for t in targets if t.exists()]
    if existing and not force:
        raise InitError(f"{', '.join(existing)} already exist(s); nothing written (--force overwrites)")
    project = build_project(data_dir, fmt, sample_rows, query_id, label)
    schema = schema_text(project)
    _check_written_schema(schema)
    config = config_text(project, str(out_path), str(targets[0]))
    out_path.mkdir(parents=True, exist_ok=True)
    targets[0].write_text(schema)
    targets[1].write_text(config)
    for line in summary_lines(project):
        print(line, file=out)
    print(f"Wrote {targets[0]} and {targets[1]}", file=out)
    print(f"Next: review both (comments say what each setting does), then: ltr run --config {targets[1]}", file=out)
    return project


def _check_written_schema(text: str) -> None:
    """The schema must load by the pipeline's own rules before it is written."""
    from google.protobuf import text_format
    from tensorflow_metadata.proto.v0 import schema_pb2

    from modules.features import SchemaError, feature_set_from_schema

    try:
        feature_set_from_schema(text_format.Parse(text, schema_pb2.Schema()))
    except (SchemaError, text_format.ParseError) as error:
        raise InitError(f"the inferred schema is not valid ({error}); nothing written") from None
