"""Issue 13, the registry and name rows: each test reproduces one probe through the public API or the CLI.

| probe | test |
|---|---|
| registry.json deleted, then a push | test_a_deleted_index_is_rebuilt_and_no_version_is_lost |
| registry.json truncated / invalid JSON | test_a_damaged_index_is_named_rebuilt_and_does_not_block_pushes |
| model_name: /abs/path, ../x, '', ., a/1 | test_names_that_leave_..., test_the_config_..., test_the_cli_... |
| retrained model at the same Trainer path | test_a_new_model_at_an_old_path_is_a_new_version |
| push killed before serving.config is written | test_a_push_killed_before_the_serving_config_... |
| bad rows under the budget, summary silent | test_the_run_summary_names_rows_set_aside_and_what_the_push_did |
| `ltr registry list` imports TensorFlow | test_query_commands_import_neither_tensorflow_nor_tfx |
"""

from __future__ import annotations

import contextlib
import io
import json
import multiprocessing
import os
import subprocess
import sys
import textwrap

import pytest

from components.registry_pusher import registry as registry_lib
from components.registry_pusher.registry import INDEX_FILE, SERVING_CONFIG_FILE, LocalRegistry
from pipeline import cli
from pipeline.config import ConfigError, config_from_dict

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _model(path, payload="x"):
    path.mkdir(parents=True)
    (path / "saved_model.pb").write_text(payload)
    (path / "variables").mkdir()
    (path / "variables" / "variables.index").write_text(payload * 10)
    (path / "variables" / "variables.data-00000-of-00001").write_text(payload * 100)
    return str(path)


def _cli(*argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(list(argv))
    return code, out.getvalue(), err.getvalue()


def _pinned(model_dir) -> list[int]:
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    text = (model_dir / SERVING_CONFIG_FILE).read_text()
    config = text_format.Parse(text, model_server_config_pb2.ModelServerConfig())
    (model,) = config.model_config_list.config
    return list(model.model_version_policy.specific.versions)


def _contents(model_dir) -> dict[str, str]:
    return {p.name: (p / "saved_model.pb").read_text() for p in model_dir.iterdir() if p.name.isdigit()}


def test_a_deleted_index_is_rebuilt_and_no_version_is_lost(tmp_path, caplog):
    root = tmp_path / "reg"
    registry = LocalRegistry(root)
    for i in range(1, 4):
        registry.register("ranker", _model(tmp_path / f"m{i}", payload=f"model-{i}"), {"ndcg_10": i / 10})
    before = _contents(root / "ranker")
    (root / "ranker" / INDEX_FILE).unlink()

    assert [v.version for v in registry.versions("ranker")] == [1, 2, 3]
    assert registry.get("ranker", 2).metadata == {"ndcg_10": 0.2}  # Kept in the version folder itself.
    code, out, _ = _cli("registry", "list", "--registry-root", str(root))
    assert code == 0 and "No versions" not in out and out.count("/reg/ranker/") == 3
    code, out, _ = _cli("registry", "show", "2", "--registry-root", str(root))
    shown = json.loads(out)
    assert code == 0 and shown["metadata"] == {"ndcg_10": 0.2}
    assert shown["fingerprint"] == registry_lib.content_fingerprint(root / "ranker" / "2")

    (root / "ranker" / INDEX_FILE).unlink(missing_ok=True)
    pushed = registry.register("ranker", _model(tmp_path / "m4", payload="model-4"))
    assert (pushed.version, pushed.newly_registered) == (4, True)
    after = _contents(root / "ranker")
    assert {k: after[k] for k in before} == before  # No folder deleted, no number reused.
    assert after["4"] == "model-4"


@pytest.mark.parametrize("damage", ["truncated", "not-json", "wrong-shape", "empty"])
def test_a_damaged_index_is_named_rebuilt_and_does_not_block_pushes(tmp_path, damage):
    root = tmp_path / "reg"
    registry = LocalRegistry(root)
    registry.register("ranker", _model(tmp_path / "m1", payload="1"))
    registry.register("ranker", _model(tmp_path / "m2", payload="2"))
    index = root / "ranker" / INDEX_FILE
    text = index.read_text()
    index.write_text(
        {"truncated": text[: len(text) // 2], "not-json": "\x00\xff garbage", "wrong-shape": "[1, 2]"}.get(damage, "")
    )

    script = textwrap.dedent(
        f"""
        import sys
        from pipeline import cli
        sys.exit(cli.main(["registry", "list", "--registry-root", {str(root)!r}]))
        """
    )
    listed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert listed.returncode == 0, listed.stderr
    assert "Traceback" not in listed.stderr
    warnings = [line for line in listed.stderr.splitlines() if INDEX_FILE in line]
    assert len(warnings) == 1 and str(index) in warnings[0] and "rebuilt" in warnings[0]
    assert listed.stdout.count("/reg/ranker/") == 2

    pushed = registry.register("ranker", _model(tmp_path / "m3", payload="3"))
    assert pushed.version == 3
    assert json.loads(index.read_text())["serving_version"] == 3
    assert _contents(root / "ranker") == {"1": "1", "2": "2", "3": "3"}


BAD_NAMES = ["ABSOLUTE", "../x", "", ".", "..", "a/1", "a\\b", "x y", "a/../../b"]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_names_that_leave_the_registry_root_are_refused_and_nothing_is_deleted(tmp_path, name):
    unrelated = tmp_path / "unrelated"
    for year in ("2024", "2025"):
        (unrelated / year).mkdir(parents=True)
        (unrelated / year / "notes.txt").write_text(year)
    name = str(unrelated) if name == "ABSOLUTE" else name
    registry = LocalRegistry(tmp_path / "reg")
    registry.register("ranker", _model(tmp_path / "m1"))
    with pytest.raises(ValueError, match="model_name"):
        registry.register(name, _model(tmp_path / "m2", payload="2"))
    with pytest.raises(ValueError, match="model_name"):
        registry.set_serving(name, 1)
    assert sorted(p.name for p in unrelated.iterdir()) == ["2024", "2025"]
    assert (unrelated / "2024" / "notes.txt").read_text() == "2024"
    assert not (tmp_path / "x").exists() and not (tmp_path / "b").exists()


@pytest.mark.parametrize("key", ["model_name", "pipeline_name"])
@pytest.mark.parametrize("name", ["/abs/path", "../x", "", ".", "..", "a/1"])
def test_the_config_refuses_names_that_are_not_plain(key, name):
    with pytest.raises(ConfigError, match=f"'{key}'"):
        config_from_dict({key: name})
    assert getattr(config_from_dict({key: "ranker-v2.1_a"}), key) == "ranker-v2.1_a"


@pytest.mark.parametrize("command", [["registry", "list"], ["registry", "rollback", "1"], ["lineage", "1"]])
def test_the_cli_refuses_a_bad_model_name_in_one_line(tmp_path, command):
    unrelated = tmp_path / "unrelated" / "2024"
    unrelated.mkdir(parents=True)
    code, out, err = _cli(*command, "--registry-root", str(tmp_path / "reg"), "--model-name", str(unrelated.parent))
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and "model_name" in err
    assert unrelated.is_dir() and not (tmp_path / "reg").exists()


def test_a_new_model_at_an_old_path_is_a_new_version(tmp_path):
    root = tmp_path / "reg"
    registry = LocalRegistry(root)
    trainer_output = tmp_path / "pipeline" / "Trainer" / "model" / "7" / "Format-Serving"
    first = registry.register("ranker", _model(trainer_output, payload="old-weights"))
    assert (first.version, first.newly_registered) == (1, True)

    # Pipeline root and MLMD wiped, the model retrained on other data: the same path, other weights.
    (trainer_output / "variables" / "variables.data-00000-of-00001").write_text("new-weights")
    second = registry.register("ranker", str(trainer_output))
    assert (second.version, second.newly_registered) == (2, True)
    assert (root / "ranker" / "1" / "variables" / "variables.data-00000-of-00001").read_text() == "old-weights" * 100
    assert (root / "ranker" / "2" / "variables" / "variables.data-00000-of-00001").read_text() == "new-weights"

    # Identical content from another path is the version that holds it.
    copy = registry.register("ranker", _model(tmp_path / "elsewhere", payload="old-weights"))
    assert (copy.version, copy.newly_registered) == (1, False)


def _die_before_serving_config(root, source):
    def killed(*args, **kwargs):
        os._exit(9)

    registry_lib.LocalRegistry._write_serving_config = killed
    LocalRegistry(root).register("ranker", source)


def test_a_push_killed_before_the_serving_config_leaves_index_and_config_agreeing(tmp_path):
    root = tmp_path / "reg"
    registry = LocalRegistry(root)
    registry.register("ranker", _model(tmp_path / "m1", payload="1"))
    m2 = _model(tmp_path / "m2", payload="2")
    process = multiprocessing.get_context("fork").Process(target=_die_before_serving_config, args=(root, m2))
    process.start()
    process.join()
    assert process.exitcode == 9

    served = registry.serving_version("ranker")
    assert _pinned(root / "ranker") == [served]
    assert json.loads((root / "ranker" / INDEX_FILE).read_text())["serving_version"] == served
    # Pushing the model again finishes the interrupted push: version 2 is served, nothing copied twice.
    again = registry.register("ranker", m2)
    assert again.version == 2 and _pinned(root / "ranker") == [2] and registry.serving_version("ranker") == 2
    assert json.loads((root / "ranker" / INDEX_FILE).read_text())["serving_version"] == 2
    assert sorted(_contents(root / "ranker")) == ["1", "2"]


def _artifact(type_id, uri, **props):
    from ml_metadata.proto import metadata_store_pb2

    artifact = metadata_store_pb2.Artifact(type_id=type_id, uri=str(uri))
    for key, value in props.items():
        if isinstance(value, int):
            artifact.custom_properties[key].int_value = value
        else:
            artifact.custom_properties[key].string_value = value
    return artifact


@pytest.mark.parametrize("bad_rows", [0, 3])
@pytest.mark.parametrize("newly_registered", [1, 0])
def test_the_run_summary_names_rows_set_aside_and_what_the_push_did(tmp_path, bad_rows, newly_registered):
    from components.ranking_evaluator.executor import EVALUATION_FILE
    from pipeline.registry_cli import print_run_summary
    from pipeline.report import RunReport

    evaluation_dir = tmp_path / "eval"
    evaluation_dir.mkdir()
    (evaluation_dir / EVALUATION_FILE).write_text(
        json.dumps({"lists": 10, "metrics": {"ndcg_10": 0.7}, "baseline": None, "blessed": True, "reason": "ok"})
    )
    examples_dir = tmp_path / "examples"
    examples_dir.mkdir()
    dead_letter = examples_dir / "dead_letter"
    (examples_dir / "summary.json").write_text(json.dumps({"bad_rows": bad_rows, "dead_letter_uri": str(dead_letter)}))
    examples = _artifact(1, examples_dir, rows_read=200, bad_rows=bad_rows)
    pushed = _artifact(
        2,
        tmp_path / "pushed",
        pushed=1,
        pushed_reason="blessed",
        registry_backend="local",
        model_name="ranker",
        pushed_version=1,
        pushed_destination="/reg/ranker/1",
        newly_registered=newly_registered,
    )
    report = RunReport(
        run_id="run-1",
        executions={},
        outputs={
            # The DataViewBinder republishes the ExampleGen's artifact: counted once.
            "Examples": [examples, examples],
            "ModelEvaluation": [_artifact(3, evaluation_dir)],
            "PushedModel": [pushed],
        },
        metadata_path="/m.sqlite",
        inputs={},
    )
    out = io.StringIO()
    print_run_summary(report, out)
    text = out.getvalue()
    if bad_rows:
        (line,) = [line for line in text.splitlines() if line.startswith("Rows set aside:")]
        assert "3 of 200" in line and str(dead_letter) in line
    else:
        assert "Rows set aside:    0 of 200" in text and str(dead_letter) not in text
    if newly_registered:
        assert "Registered model:  ranker version 1 (new version, local registry)" in text
    else:
        assert "identical content to existing version 1" in text and "new version" not in text


_LIGHT = textwrap.dedent(
    """
    import json, sys
    from pipeline import cli
    code = cli.main(sys.argv[1:])
    heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "tfx", "keras", "tensorflow_ranking"))
    print(json.dumps({"code": code, "heavy": heavy[:5]}))
    """
)


def test_query_commands_import_neither_tensorflow_nor_tfx(tmp_path):
    from ml_metadata import metadata_store
    from ml_metadata.proto import metadata_store_pb2

    root = tmp_path / "reg"
    LocalRegistry(root).register("ranker", _model(tmp_path / "m1"), {"model_artifact_id": 1})
    connection = metadata_store_pb2.ConnectionConfig()
    connection.sqlite.filename_uri = str(tmp_path / "metadata.sqlite")
    metadata_store.MetadataStore(connection)  # An empty MLMD database.
    common = ["--registry-root", str(root), "--metadata-path", str(tmp_path / "metadata.sqlite")]
    for argv, expected_code in (
        (["registry", "list"], 0),
        (["registry", "show", "1"], 0),
        (["registry", "rollback", "1"], 0),
        (["lineage", "1"], 1),  # The artifact is not in this empty MLMD: a one-line error, after the imports.
    ):
        result = subprocess.run(
            [sys.executable, "-c", _LIGHT, *argv, *common], capture_output=True, text=True, cwd=REPO, timeout=120
        )
        answer = json.loads(result.stdout.strip().splitlines()[-1])
        assert answer == {"code": expected_code, "heavy": []}, (argv, result.stderr[-2000:])


def test_the_context_type_names_spelled_out_for_light_readers_are_tfx_s():
    from tfx.dsl.compiler import constants

    from pipeline import report

    assert report.PIPELINE_CONTEXT_TYPE == constants.PIPELINE_CONTEXT_TYPE_NAME
    assert report.PIPELINE_RUN_CONTEXT_TYPE == constants.PIPELINE_RUN_CONTEXT_TYPE_NAME
    assert report.NODE_CONTEXT_TYPE == constants.NODE_CONTEXT_TYPE_NAME


def test_the_component_and_its_executor_refuse_bad_names_before_writing(tmp_path):
    from tfx.types import artifact_utils, channel_utils, standard_artifacts

    from components.registry_pusher import RegistryPusher
    from components.registry_pusher.executor import Executor

    model = standard_artifacts.Model()
    model.uri = _model(tmp_path / "model" / "Format-Serving")
    with pytest.raises(ValueError, match="'model_name'"):
        RegistryPusher(model=channel_utils.as_channel([model]), registry_root=str(tmp_path / "reg"), model_name="..")
    pushed = standard_artifacts.PushedModel()
    pushed.uri = str(tmp_path / "pushed")
    properties = {"registry_root": str(tmp_path / "reg"), "model_name": str(tmp_path / "unrelated")}
    with pytest.raises(ValueError, match="'model_name'"):
        Executor().Do({"model": [model]}, {"pushed_model": [pushed]}, properties)
    assert not (tmp_path / "reg").exists() and not (tmp_path / "pushed").exists()
    assert artifact_utils.get_single_instance([pushed]).get_string_custom_property("model_name") == ""


def test_the_summary_of_a_real_run_says_what_the_push_did_and_counts_rows_set_aside(pipeline_run):
    """The same lines from a LocalDagRunner run (the session's shared tiny run: no bad rows in it)."""
    from pipeline.registry_cli import print_run_summary

    config, report = pipeline_run
    with open(os.path.join(config.data_root, "span-2", "logs.csv")) as handle:
        rows_read = sum(1 for _ in handle) - 1
    (examples,) = report.rows_set_aside
    assert (examples["bad_rows"], examples["rows_read"]) == (0, rows_read)
    assert examples["dead_letter_uri"].startswith(config.pipeline_root)
    registration = report.registration
    assert registration["newly_registered"] and registration["fingerprint"].startswith("sha256:")
    out = io.StringIO()
    print_run_summary(report, out)
    text = out.getvalue()
    assert f"Rows set aside:    0 of {rows_read}\n" in text
    assert f"Registered model:  ranker version {registration['version']} (new version, local registry)" in text


def test_a_model_folder_that_links_out_of_the_registry_root_is_refused(tmp_path):
    outside = tmp_path / "outside"
    (outside / "2024").mkdir(parents=True)
    (tmp_path / "reg").mkdir()
    (tmp_path / "reg" / "ranker").symlink_to(outside, target_is_directory=True)
    registry = LocalRegistry(tmp_path / "reg")
    with pytest.raises(ValueError, match="outside"):
        registry.register("ranker", _model(tmp_path / "m1"))
    with pytest.raises(ValueError, match="outside"):
        registry.versions("ranker")
    assert sorted(p.name for p in outside.iterdir()) == ["2024"]
