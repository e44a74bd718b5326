"""ML Metadata on a real MariaDB server: the pipeline, a retraining run and `ltr lineage` against it."""

from __future__ import annotations

import io
import os
from contextlib import redirect_stdout
from pathlib import Path

import pytest
import yaml

from pipeline.cli import main
from pipeline.config import ConfigError, apply_overrides, load_config
from pipeline.local_run import ensure_sample_data, run_local
from pipeline.metadata_connection import connection_config, describe
from pipeline.sample_data import SampleSpec, write_span
from tests.helpers import tiny_config
from tests.mariadb import MariaDB, server_binaries

PASSWORD_ENV = "LTR_TEST_MLMD_PASSWORD"
DATABASE = "ltr_mlmd_test"


@pytest.fixture(scope="module")
def mariadb(tmp_path_factory):
    binaries, why = server_binaries()
    if not binaries:
        pytest.skip(why)
    server = MariaDB(tmp_path_factory.mktemp("mariadb"), binaries).start()
    yield server
    server.stop()


def _mysql_settings(server: MariaDB) -> dict:
    return {
        "metadata.mysql.host": "127.0.0.1",
        "metadata.mysql.port": server.port,
        "metadata.mysql.database": DATABASE,
        "metadata.mysql.user": server.user,
        "metadata.mysql.password_env": PASSWORD_ENV,
    }


def test_password_comes_from_the_named_environment_variable(monkeypatch):
    config = apply_overrides(load_config(), {"metadata.mysql.host": "db", "metadata.mysql.password_env": "NO_SUCH_VAR"})
    monkeypatch.delenv("NO_SUCH_VAR", raising=False)
    with pytest.raises(ConfigError, match="'NO_SUCH_VAR', which is not set"):
        connection_config(config)
    monkeypatch.setenv("NO_SUCH_VAR", "s3cret")
    connection = connection_config(config)
    assert (connection.mysql.host, connection.mysql.port, connection.mysql.password) == ("db", 3306, "s3cret")
    assert describe(connection) == "mysql://ltr@db:3306/ltr_mlmd"  # never the password


def test_pipeline_retraining_and_lineage_on_mariadb(mariadb, tmp_path, monkeypatch):
    monkeypatch.setenv(PASSWORD_ENV, mariadb.password)
    home = tmp_path / "home"
    config = tiny_config(
        home,
        **_mysql_settings(mariadb),
        **{
            "sample_data.queries": 80,
            "training.train_steps": 40,
            "tuner.max_trials": 1,
            "tuner.train_steps": 10,
            "evaluation.min_value": 0.0,  # this test is about MLMD, not the gate
            "evaluation.max_regression": 1.0,
        },
    ).resolved()
    assert ensure_sample_data(config)
    first = run_local(config)
    assert set(first.executions.values()) == {"COMPLETE"}, first.executions
    assert first.metadata_path == f"mysql://{mariadb.user}@127.0.0.1:{mariadb.port}/{DATABASE}"
    assert not os.path.exists(config.metadata_path)  # no SQLite file: MLMD lives in MariaDB
    # The records are rows of MariaDB's tables (read with its own client, not through MLMD).
    (executions,) = mariadb.query("SELECT COUNT(*) FROM Execution", DATABASE)[0]
    assert int(executions) == len(first.executions)

    # Retraining without the Tuner: the hyperparameters are found by an MLMD query on MariaDB.
    write_span(Path(config.data_root), 3, SampleSpec(queries=config.sample_data.queries, seed=11))
    second = run_local(apply_overrides(config, {"tuner.enabled": False}))
    assert second.executions["LatestHyperparametersResolver"] == "COMPLETE"
    assert second.executions["Trainer"] == "COMPLETE"
    assert [a.id for a in second.inputs["Trainer"]["HyperParameters"]] == [first.artifact("HyperParameters").id]
    assert second.registration["version"] == 2

    # `ltr registry` and `ltr lineage` with the same config file read it back.
    config_file = tmp_path / "mysql.yaml"
    settings = {"registry_root": config.registry_root, "metadata_path": config.metadata_path, "metadata": {}}
    settings["metadata"]["mysql"] = {k.split(".")[-1]: v for k, v in _mysql_settings(mariadb).items()}
    config_file.write_text(yaml.safe_dump(settings))
    out = io.StringIO()
    with redirect_stdout(out):
        assert main(["registry", "list", "--config", str(config_file)]) == 0
        assert main(["lineage", "2", "--config", str(config_file)]) == 0
    text = out.getvalue()
    model = second.artifact("Model")
    assert f"ranker version 2: model artifact {model.id}" in text
    assert "Trainer:    Trainer (execution" in text
    assert "Hyperparameters (tuned" in text  # traced through the Resolver to the first run's Tuner
    assert "span 3, version" in text


def test_without_the_server_the_skip_reason_says_how_to_install_it(monkeypatch):
    import tests.mariadb as mariadb_helper

    monkeypatch.setattr(mariadb_helper, "CANDIDATES", {"server": ("no-such-mariadbd",), "client": ("sh",)})
    binaries, why = mariadb_helper.server_binaries()
    assert binaries == {}
    assert why.startswith("MariaDB is not installed (no no-such-mariadbd): `make mariadb` installs Debian's")
