"""kubeflow/Dockerfile, read statically (no image can be built here): stages, copied paths, entry points.

One image serves as the TFX component container (command from the compiled spec) and
as the Beam SDK worker (ENTRYPOINT: Beam's boot binary, copied from Beam's SDK image).
"""

from __future__ import annotations

import dataclasses
import json
import re
import shlex
from pathlib import Path

import pytest

from pipeline.kubeflow import CONTAINER_COMMAND, CONTAINER_SCHEMA_PATH, CONTAINER_SOURCE_ROOT

REPO = Path(__file__).resolve().parent.parent
BOOT = "/opt/apache/beam/boot"


@dataclasses.dataclass
class Stage:
    image: str
    name: str | None
    instructions: list[tuple[str, str]]  # (INSTRUCTION, arguments), continuation lines joined

    def all(self, instruction: str) -> list[str]:
        return [args for name, args in self.instructions if name == instruction]


def parse_dockerfile(text: str) -> list[Stage]:
    joined = re.sub(r"\\\n", " ", text)
    stages: list[Stage] = []
    for line in joined.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, args = line.partition(" ")
        instruction = instruction.upper()
        if instruction == "FROM":
            words = args.split()
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(words[0], name, []))
        else:
            stages[-1].instructions.append((instruction, args.strip()))
    return stages


def _lock_version(package: str) -> str:
    for line in (REPO / "requirements.lock").read_text().splitlines():
        if line.startswith(f"{package}=="):
            return line.split("==", 1)[1].split()[0]
    raise AssertionError(f"{package} is not in requirements.lock")


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    return parse_dockerfile((REPO / "kubeflow" / "Dockerfile").read_text())


def test_two_stages_beam_sdk_image_matches_the_locked_beam_and_python(stages):
    assert [s.name for s in stages] == ["beam_sdk", None]
    beam, final = stages
    assert beam.image == f"apache/beam_python3.11_sdk:{_lock_version('apache-beam')}"
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm", final.image)
    assert not beam.instructions  # only a source of files


def test_boot_binary_is_copied_from_the_beam_stage_and_is_the_entry_point(stages):
    final = stages[-1]
    copies = [shlex.split(args) for args in final.all("COPY") if args.startswith("--from=")]
    assert copies == [["--from=beam_sdk", "/opt/apache/beam", "/opt/apache/beam"]]
    assert json.loads(final.all("ENTRYPOINT")[-1]) == [BOOT]
    # Checked at build time: the boot binary is there and the lock's Beam matches the SDK image's.
    checks = " ".join(final.all("RUN"))
    assert f"test -x {BOOT}" in checks
    assert f"apache_beam.__version__ == '{_lock_version('apache-beam')}'" in checks


def test_project_files_are_copied_and_installed_where_the_compiled_spec_expects_them(stages):
    final = stages[-1]
    assert final.all("WORKDIR") == [CONTAINER_SOURCE_ROOT]
    local_copies = [shlex.split(args) for args in final.all("COPY") if not args.startswith("--from=")]
    sources = {src for *srcs, _ in local_copies for src in srcs}
    for source in sources:
        assert (REPO / source).exists(), f"COPY source {source} is not in the repository"
    packages = {p.parent.name for p in REPO.glob("*/__init__.py")} - {"tests"}
    assert packages <= sources, f"packages not copied into the image: {packages - sources}"
    assert ["schemas", "./schemas"] in local_copies
    assert CONTAINER_SCHEMA_PATH == f"{CONTAINER_SOURCE_ROOT}/schemas/schema.pbtxt"
    ignored = {line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()}
    assert not sources & ignored
    runs = " ".join(final.all("RUN"))
    assert "uv pip sync --system requirements.lock" in runs and "-e ." in runs


def test_component_role_takes_its_command_from_the_compiled_spec_not_the_entry_point(tmp_path):
    from pipeline.config import apply_overrides, load_config
    from pipeline.kubeflow import compile_pipeline

    config = apply_overrides(load_config(), {"cloud.image": "ltr:test"}).resolved(tmp_path)
    with open(compile_pipeline(config, target="kubeflow", output_dir=str(tmp_path))) as handle:
        spec = json.load(handle)
    containers = [e["container"] for e in spec["deploymentSpec"]["executors"].values() if "container" in e]
    assert containers and all(c["command"] == CONTAINER_COMMAND for c in containers)
    assert CONTAINER_COMMAND != [BOOT]
