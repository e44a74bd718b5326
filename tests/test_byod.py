"""Bring your own data, through the CLI: `ltr init`, preflight, one-line errors, the quiet run."""

from __future__ import annotations

import csv
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline import cli
from pipeline.preflight import TAG_KEYS, PreflightError, preflight
from tests.helpers import tiny_config

SAMPLE_SCHEMA = (Path(__file__).resolve().parent.parent / "schemas" / "schema.pbtxt").read_text()


# ---- data -------------------------------------------------------------------------------
def write_letor(folder: Path, queries: int, features: int, seed: int = 3, name: str = "train.txt") -> Path:
    """LETOR lines: feature 1 constant per query (context), 2-4 carry the label, every 7th is sparse."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    with open(path, "w") as handle:
        for q in range(queries):
            query_words = rng.randint(1, 6)
            for d in range(rng.randint(4, 12)):
                relevance = rng.random()
                tokens = []
                for i in range(1, features + 1):
                    if i == 1:
                        value = query_words
                    elif i % 7 == 0 and rng.random() < 0.6:
                        continue  # absent index
                    elif i in (2, 3, 4):
                        value = round(relevance * 10 + rng.gauss(0, 1), 3)
                    else:
                        value = round(rng.random() * (i % 5 + 1), 4)
                    tokens.append(f"{i}:{value}")
                handle.write(f"{min(4, int(relevance * 5))} qid:{100 + q} {' '.join(tokens)} # docid = D{q}-{d}\n")
    return path


UNUSUAL_HEADER = ["Search Session", "Item ID", "Slot", "Query Words", "Price ($)", "Avg. Rating", "Category",
                  "Title", "Relevance Grade"]  # fmt: skip


def write_unusual_csv(folder: Path, queries: int, seed: int = 5) -> Path:
    """A warehouse export: spaces and symbols in names, a string feature, free text, missing cells."""
    rng = random.Random(seed)
    path = folder / "span-1" / "export.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(UNUSUAL_HEADER)
        for q in range(queries):
            words = rng.randint(1, 5)
            for d in range(rng.randint(4, 10)):
                relevance = rng.random()
                rating = "" if rng.random() < 0.1 else round(1 + 4 * relevance, 1)
                writer.writerow([f"s{q:04d}", f"item-{q}-{d}", d, words, round(rng.uniform(1, 300), 2), rating,
                                 rng.choice(["shoes", "bags", "hats"]), f"product title {q} {d} {rng.random():.6f}",
                                 min(3, int(relevance * 4))])  # fmt: skip
    return path


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def tree(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.exists() else []


# ---- ltr init ----------------------------------------------------------------------------
def test_init_on_a_letor_folder_writes_a_schema_with_every_index(tmp_path, capsys):
    write_letor(tmp_path / "data", queries=12, features=20)
    code, out, err = run_cli(capsys, "init", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "proj"))
    assert code == 0, err
    schema = (tmp_path / "proj" / "schema.pbtxt").read_text()
    config = (tmp_path / "proj" / "config.yaml").read_text()
    from google.protobuf import text_format
    from tensorflow_metadata.proto.v0 import schema_pb2

    from modules.features import Role, feature_set_from_schema

    features = feature_set_from_schema(text_format.Parse(schema, schema_pb2.Schema()))
    assert [f.name for f in features.features if f.is_model_input] == [f"f{i}" for i in range(1, 21)]
    assert features["f1"].role == Role.CONTEXT  # constant within every list, not across lists
    assert features["f2"].role == Role.DOCUMENT
    assert features["f7"].default == 0  # sparse: absent index = 0, and the comment says so
    assert "an absent LETOR index is 0" in schema
    assert features.label.max_value == 4 and features.query_id.name == "query_id"
    assert features.single(Role.DOC_ID) is not None
    assert "transform:T" in schema and "role:context" in schema  # the tags are explained
    assert 'input_pattern: "*.txt"' in config and "format: letor" in config
    assert "lists: 12; documents per list: min" in out
    assert "label 'label' (from the leading label): 0:" in out


def test_init_maps_unusual_csv_names_and_leaves_out_free_text(tmp_path, capsys):
    write_unusual_csv(tmp_path / "data", queries=20)
    code, out, err = run_cli(capsys, "init", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "proj"))
    assert code == 0, err
    schema = (tmp_path / "proj" / "schema.pbtxt").read_text()
    config = (tmp_path / "proj" / "config.yaml").read_text()
    assert 'price: "Price ($)"' in config and 'relevance_grade: "Relevance Grade"' in config
    assert 'input_pattern: "span-{SPAN}/*.csv"' in config
    from modules.features import Role, load_feature_set

    features = load_feature_set(tmp_path / "proj" / "schema.pbtxt")
    assert features.query_id.name == "search_session" and features.label.name == "relevance_grade"
    assert features.single(Role.DOC_ID).name == "item_id" and features.single(Role.POSITION).name == "slot"
    assert features["query_words"].role == Role.CONTEXT and features["price"].role == Role.DOCUMENT
    assert "# LEFT OUT (" in schema and '#   name: "title"' in schema  # one value per row: free text
    assert 'name: "category"' in schema and "transform:vocabulary" in schema
    assert "missing values in 1 feature(s): avg_rating" in out


def test_init_refuses_to_overwrite_and_names_missing_columns(tmp_path, capsys):
    write_unusual_csv(tmp_path / "data", queries=5)
    out_dir = tmp_path / "proj"
    out_dir.mkdir()
    (out_dir / "schema.pbtxt").write_text("# mine\n")
    code, _, err = run_cli(capsys, "init", "--data", str(tmp_path / "data"), "--out", str(out_dir))
    assert code == 2 and "already exist" in err and "--force" in err
    assert (out_dir / "schema.pbtxt").read_text() == "# mine\n" and not (out_dir / "config.yaml").exists()

    bare = tmp_path / "bare" / "rows.csv"
    bare.parent.mkdir()
    bare.write_text("a,b\n1,2\n")
    code, _, err = run_cli(capsys, "init", "--data", str(bare.parent), "--out", str(tmp_path / "p2"))
    assert code == 2 and "no query id column among a, b" in err and "--query-id" in err
    assert not (tmp_path / "p2").exists()
    code, _, err = run_cli(capsys, "init", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "p3"))
    assert code == 2 and err.count("\n") == 1 and "nowhere' does not exist" in err


def test_init_on_elwc_written_by_tf_ranking(tmp_path, capsys):
    from tests.helpers import FIXTURES

    code, out, err = run_cli(capsys, "init", "--data", str(FIXTURES), "--out", str(tmp_path / "proj"))
    assert code == 0, err
    from modules.features import load_feature_set

    features = load_feature_set(tmp_path / "proj" / "schema.pbtxt")
    assert features.label.name == "utility" and features.query_id.name == "query_id"
    assert (
        len(features.document) > 100
        and "ExampleGen gives each list an id" in out + (tmp_path / "proj" / "schema.pbtxt").read_text()
    )
    assert "from 2 file(s) (elwc)" in out and "format: elwc" in (tmp_path / "proj" / "config.yaml").read_text()


def test_init_reads_formats_without_importing_tensorflow_or_tfx():
    code = "import sys, pipeline.init_project; print(sorted({'tensorflow', 'tfx'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# ---- preflight, through `ltr run` ----------------------------------------------------------
def _home(tmp_path: Path) -> list[str]:
    return [
        "--pipeline-root", str(tmp_path / "pipe"),
        "--metadata-path", str(tmp_path / "md.sqlite"),
        "--registry-root", str(tmp_path / "registry"),
    ]  # fmt: skip


def _sample_csv(folder: Path, span: int = 1, header=None) -> Path:
    from pipeline.sample_data import SampleSpec, write_span

    write_span(folder, span, SampleSpec(queries=5, seed=1))
    path = folder / f"span-{span}" / "logs.csv"
    if header:
        lines = path.read_text().splitlines()
        lines[0] = lines[0].replace(*header)
        path.write_text("\n".join(lines) + "\n")
    return path


def test_a_wrong_data_path_is_an_error_and_generates_nothing(tmp_path, capsys):
    typo = tmp_path / "data-typo"
    code, out, err = run_cli(capsys, "run", "--data", str(typo), *_home(tmp_path))
    assert code == 2
    assert err.count("\n") == 1  # one line (with the log path): no traceback
    assert f"data root '{typo}' (input pattern 'span-{{SPAN}}/*.csv'): the data root does not exist" in err
    assert not typo.exists() and not (tmp_path / "md.sqlite").exists() and not (tmp_path / "registry").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, err = run_cli(capsys, "run", "--data", str(empty), *_home(tmp_path))
    assert code == 2 and "the data root is empty" in err and tree(empty) == []


def test_sample_data_only_for_the_embedded_default_or_when_asked(tmp_path, capsys, monkeypatch):
    bad_schema = tmp_path / "bad.pbtxt"
    bad_schema.write_text(SAMPLE_SCHEMA.replace('tag: "transform:passthrough"', 'tag: "tranform:zscore"', 1))
    monkeypatch.chdir(tmp_path)
    # The embedded default data_root (ltr-home/data): generated, then the schema typo stops the run.
    code, out, err = run_cli(capsys, "run", "--schema", str(bad_schema))
    assert (tmp_path / "ltr-home" / "data" / "span-2" / "logs.csv").exists()
    assert code == 2
    assert "feature 'rating': unknown tag key 'tranform' in 'tranform:zscore'" in err
    assert "did you mean 'transform'?" in err and "Traceback" not in err
    assert not (tmp_path / "ltr-home" / "metadata.sqlite").exists()  # no component ran
    # Another empty data root is filled only with --sample.
    asked = tmp_path / "asked"
    code, _, _ = run_cli(capsys, "run", "--data", str(asked), "--sample", "--schema", str(bad_schema), *_home(tmp_path))
    assert code == 2 and (asked / "span-1" / "logs.csv").exists()


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (('tag: "role:document" tag: "default:50"', 'tag: "role:documnt" tag: "default:50"'),
         "feature 'price': unknown role 'documnt' in 'role:documnt' (known: query_id, doc_id, position, label, "
         "context, document); did you mean 'document'?"),
        (('tag: "default:50"', 'tag: "default:fifty"'), "feature 'price': default 'fifty' is not a number"),
        (('tag: "transform:passthrough"', 'tag: "transform:zcore"'), "unknown transform 'zcore'"),
        (('tag: "role:label"', 'tag: "role:document" tag: "default:0"'), "exactly one 'label' feature, found 0"),
    ],
)  # fmt: skip
def test_schema_mistakes_are_one_line_errors(tmp_path, capsys, edit, message):
    _sample_csv(tmp_path / "data")
    schema = tmp_path / "s.pbtxt"
    schema.write_text(SAMPLE_SCHEMA.replace(*edit, 1))
    code, _, err = run_cli(capsys, "run", "--data", str(tmp_path / "data"), "--schema", str(schema), *_home(tmp_path))
    assert code == 2 and message in err and str(schema) in err and "Traceback" not in err, err


@pytest.mark.parametrize(
    ("config_text", "message"),
    [
        ("examples:\n  columns: {prize: Price}\n", "config 'examples.columns' names 'prize', which is not a feature"),
        ("transform:\n  overrides: {pricee: zscore}\n", "'transform.overrides' names 'pricee'"),
        ("transform:\n  overrides: {price: zscor}\n", "unknown transform 'zscor'"),
        ("examples:\n  letor_features: {'3': f3}\n", "'examples.letor_features.3' names 'f3'"),
        ("evaluation:\n  slices: [query_lenght]\n", "'evaluation.slices' names 'query_lenght'"),
        ("evaluation:\n  slices: [price]\n", "'evaluation.slices': 'price' is not a context feature"),
    ],
)
def test_config_maps_must_name_schema_features(tmp_path, capsys, config_text, message):
    _sample_csv(tmp_path / "data")
    config = tmp_path / "c.yaml"
    config.write_text(config_text)
    code, _, err = run_cli(capsys, "run", "--config", str(config), "--data", str(tmp_path / "data"), *_home(tmp_path))
    assert code == 2 and message in err, err


def test_missing_span_and_missing_label_column(tmp_path, capsys):
    data = tmp_path / "data"
    path = _sample_csv(data, header=("label", "grade"))
    code, _, err = run_cli(capsys, "run", "--data", str(data), "--span", "7", *_home(tmp_path))
    assert code == 2 and "span 7" in err and "span-{SPAN}/*.csv" in err and "Traceback" not in err
    code, _, err = run_cli(capsys, "run", "--data", str(data), *_home(tmp_path))
    assert code == 2
    assert f"{path}: the first" in err and "have no label 'label'" in err and "grade" in err
    assert "examples.columns: {label: <column>}" in err
    assert not (tmp_path / "md.sqlite").exists()


def test_features_never_seen_are_warned_about_by_name(tmp_path):
    data = tmp_path / "data"
    _sample_csv(data, header=("ctr_7d", "ctr_last_week"))
    config = tiny_config(tmp_path, data_root=str(data)).resolved()
    from modules.features import DEFAULT_SCHEMA_PATH

    report = preflight(config, str(DEFAULT_SCHEMA_PATH))
    assert len(report.warnings) == 1 and "never occur" in report.warnings[0]
    assert report.warnings[0].endswith(": ctr_7d") and report.span == 1


def test_tag_keys_are_the_ones_modules_features_reads(tmp_path):
    """Each known key changes what modules.features builds (so the list is not stale)."""
    from modules.features import Transform

    assert set(TAG_KEYS) == {"role", "default", "transform", "buckets", "oov"}
    assert {t.value for t in Transform} >= {"log1p", "zscore", "bucketize", "vocabulary", "passthrough"}
    with pytest.raises(PreflightError, match="unknown tag key 'bucket'.*did you mean 'buckets'"):
        from pipeline.preflight import check_schema

        schema = tmp_path / "s.pbtxt"
        schema.write_text(SAMPLE_SCHEMA.replace('tag: "default:50"', 'tag: "default:50" tag: "bucket:5"', 1))
        check_schema(str(schema))


def test_errors_wrapped_by_beam_or_run_fn_are_recognised():
    wrapped = RuntimeError(
        "Traceback (most recent call last):\n  File x\nmodules.features.SchemaError: feature 'x': default 'a' "
        "is not a number [while running 'Parse']\n"
    )
    assert cli.user_error_message(wrapped) == "feature 'x': default 'a' is not a number"
    trainer = ValueError("tuning is off but no hyperparameters reached the Trainer: run once with the Tuner on")
    assert cli.user_error_message(trainer).startswith("tuning is off")
    assert cli.user_error_message(KeyError("bug")) is None


def test_a_real_bug_prints_a_traceback_and_the_log_path(tmp_path, capsys, monkeypatch):
    _sample_csv(tmp_path / "data")
    import pipeline.local_run

    def broken(config):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(pipeline.local_run, "run_local", broken)
    code, out, err = run_cli(capsys, "run", "--data", str(tmp_path / "data"), *_home(tmp_path))
    assert code == 1
    assert "Traceback" in err and "ZeroDivisionError: a bug" in err and "internal error" in err
    log = next((tmp_path / "pipe" / "logs").glob("run-*.log"))
    assert f"full log: {log}" in err and "ZeroDivisionError: a bug" in log.read_text()


# ---- errors raised inside a component, during the LocalDagRunner run --------------------------
def test_too_many_bad_rows_inside_example_gen_is_one_line(tmp_path, capsys):
    path = _sample_csv(tmp_path / "data")
    lines = path.read_text().splitlines()
    header = lines[0].split(",")
    label = header.index("label")
    for i in range(1, len(lines), 2):  # every other row: a label outside the schema's 0..4
        cells = lines[i].split(",")
        cells[label] = "9"
        lines[i] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n")
    code, out, err = run_cli(capsys, "run", "--data", str(tmp_path / "data"), *_home(tmp_path))
    assert code == 2, err
    assert "were bad, more than examples.max_bad_row_fraction=0.01" in err and "Traceback" not in err
    assert err.count("\n") == 1
    assert "ElwcExampleGen" in out and "failed after" in out
    assert not (tmp_path / "registry").exists()


# ---- end to end: init, then run with the generated files, no hand edits -------------------------
FAST = ["--train-steps", "40", "--tuner-trials", "1", "--tuner-steps", "6"]
NODES = ["ImportSchemaGen", "ElwcExampleGen", "Transform", "Tuner", "Trainer", "RankingEvaluator", "RegistryPusher"]


@pytest.mark.parametrize("kind", ["letor", "csv"])
def test_init_then_run_registers_a_model(tmp_path, capsys, kind):
    data = tmp_path / "data"
    if kind == "letor":
        write_letor(data, queries=80, features=12)
    else:
        write_unusual_csv(data, queries=80)
    before = tree(data)
    project = tmp_path / "project"
    code, _, err = run_cli(capsys, "init", "--data", str(data), "--out", str(project))
    assert code == 0, err
    code, out, err = run_cli(capsys, "run", "--config", str(project / "config.yaml"), *FAST)
    assert code == 0, err
    registered = project / "ltr-home" / "registry" / "ranker" / "1" / "saved_model.pb"
    assert registered.exists()
    assert tree(data) == before  # nothing written into the data
    lines = out.splitlines()
    for node in NODES:
        assert any(line.startswith(f"  {node} ") for line in lines), (node, out)
    assert "registered ranker version 1" in out and "1 trial(s), best val NDCG@10" in out
    assert "40 steps," in out and "final val NDCG@10" in out and " bad rows" in out
    assert len(lines) < 30, out  # quiet: the logs are in the file
    log = Path(out.split("full logs in ")[1].split()[0])
    assert log.parent == project / "ltr-home" / "pipeline" / "logs"
    text = log.read_text()
    assert "absl" in text and "Epoch 1/" in text and len(text.splitlines()) > 200
    assert os.path.getsize(log) > 10_000


# ---- the quiet console ----------------------------------------------------------------------
def test_progress_comes_from_the_log_stream(tmp_path, monkeypatch):
    import io

    from pipeline import run_output

    monkeypatch.setattr(run_output, "_PLAIN_PROGRESS_EVERY_S", 0.0)
    out = io.StringIO()
    console = run_output.RunConsole(tiny_config(tmp_path), out=out)
    assert console.log_path.startswith(str(tmp_path / "pipeline" / "logs" / "run-"))
    console.tty = False
    console.component_started("Tuner")
    console._log_line("Search: Running Trial #2")
    console._log_line("Epoch 1/2")
    assert console._detail == "trial 2/2, epoch 1/2"
    console.component_started("Trainer")
    console._log_line("Epoch 3/6")
    console.beam_stage("((ref_AppliedPTransform_ReadFiles-Parse-Map_12)+(ref_AppliedPTransform_Other_3))")
    lines = out.getvalue().splitlines()
    assert lines[-2].startswith("  Trainer") and lines[-2].endswith("epoch 3/6")
    assert lines[-1].endswith("Beam: ReadFiles/Parse (bundle 1)")
    assert console.lines == []  # progress lines are not component lines
    verbose = run_output.RunConsole(tiny_config(tmp_path), verbose=True)
    assert verbose.log_path is None


def test_verbose_writes_no_log_file(tmp_path, capsys, monkeypatch):
    _sample_csv(tmp_path / "data")
    import pipeline.local_run

    def stop(config):
        raise PreflightError("stopped here")

    monkeypatch.setattr(pipeline.local_run, "run_local", stop)
    code, out, err = run_cli(capsys, "run", "--verbose", "--data", str(tmp_path / "data"), *_home(tmp_path))
    assert code == 2 and err == "ltr: error: stopped here\n"
    assert "full logs in" not in out and not (tmp_path / "pipe" / "logs").exists()
