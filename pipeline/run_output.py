"""What ``ltr run`` prints: one line per component, a progress indicator, the full logs in a file.

By default every log (TensorFlow's C++ and Python logs, Beam, absl/TFX, Keras and
KerasTuner output, the training workers' output) goes to ``<pipeline_root>/logs/
run-<time>.log``: file descriptors 1 and 2 are pointed at the file for the run
(so C++ and subprocess output follow) and ``sys.stdout``/``sys.stderr`` and the
root logger write there too. The console gets one line per component as it
finishes, read from MLMD (state, cached or not, the numbers that matter), and
while a component runs a status line (TTY) or an occasional progress line (not a
TTY): Beam stages, tuner trials, training epochs, recognised in the log stream.

Components do not print anything for this: LocalDagRunner runs each node through
TFX's ``Launcher.launch``, which is wrapped for the run to time it; the result is
then read from the node's execution in MLMD.
"""

from __future__ import annotations

import contextlib
import datetime
import io
import json
import logging
import os
import re
import sys
import threading
import time

from pipeline.config import Config

_BEAM_BUNDLE_LOGGER = "apache_beam.runners.portability.fn_api_runner.fn_runner.run_bundle"
_TRIAL = re.compile(r"Running Trial #(\d+)")
_EPOCH = re.compile(r"^Epoch (\d+)/(\d+)")
_STAGE_PREFIX = re.compile(r"ref_AppliedPTransform_|ref_PCollection_|[()\[\]]|_\d+$")
_TTY_REFRESH_S = 0.5
_PLAIN_PROGRESS_EVERY_S = 30.0


def log_file_path(config: Config) -> str:
    """Where the run's full logs go (under the pipeline root; a temp dir for remote roots)."""
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    root = config.pipeline_root
    if "://" in root:
        import tempfile

        root = tempfile.gettempdir()
    return os.path.join(root, "logs", f"run-{stamp}.log")


class _ScanningStream(io.TextIOBase):
    """A text stream that appends to the log file and shows progress lines to a callback."""

    def __init__(self, handle, on_line):
        self._handle = handle
        self._on_line = on_line
        self._partial = ""
        self._lock = threading.Lock()

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        with self._lock:
            self._handle.write(text)
            self._partial += text
            *lines, self._partial = re.split(r"[\r\n]", self._partial)
        for line in lines:
            if line:
                self._on_line(line)
        return len(text)

    def flush(self) -> None:
        with self._lock:
            self._handle.flush()

    def isatty(self) -> bool:
        return False


def _watch_launches(console: RunConsole):
    """Wraps TFX's ``Launcher.launch`` (LocalDagRunner runs each node through one) for the run.

    Returns the undo. The node id, the time and the outcome come from the call itself; the
    numbers from MLMD once it returned.
    """
    from tfx.orchestration.portable import launcher

    original = launcher.Launcher.launch

    def launch(self, *args, **kwargs):
        node = self._pipeline_node.node_info.id  # noqa: SLF001 - the node this launcher runs
        console.component_started(node)
        result = original(self, *args, **kwargs)  # an exception propagates: __exit__ reports it
        try:
            console.component_finished(node)
        except Exception:  # noqa: BLE001 - reporting must never break the run
            logging.getLogger(__name__).exception("reporting component %s failed", node)
        return result

    launcher.Launcher.launch = launch
    return lambda: setattr(launcher.Launcher, "launch", original)


class _BeamStageHook(logging.Handler):
    """Beam's bundle log (DEBUG, kept out of the log file): the stage being run."""

    def __init__(self, console: RunConsole):
        super().__init__(logging.DEBUG)
        self._console = console

    def emit(self, record: logging.LogRecord) -> None:
        if record.args and str(record.msg).startswith("Running bundle for stage"):
            self._console.beam_stage(str(record.args[0]))


class RunConsole:
    """Context manager around a local run: log redirection, component lines, progress."""

    def __init__(self, config: Config, verbose: bool = False, out=None):
        self.config = config
        self.verbose = verbose
        self.out = out or sys.stdout
        self.log_path = None if verbose else log_file_path(config)
        self.lines: list[str] = []  # the component lines printed
        self._node: str | None = None
        self._started = 0.0
        self._detail = ""
        self._trials = 0
        self._stages = 0
        self._last_plain = 0.0
        self._status_shown = False
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._saved: list = []

    # ---- setup and teardown -------------------------------------------------
    def __enter__(self) -> RunConsole:
        root = logging.getLogger()
        if self.verbose:
            self._saved.append(_watch_launches(self))
            return self
        os.makedirs(os.path.dirname(self.log_path), exist_ok=True)
        self.out = self._console_stream()
        self.tty = bool(getattr(self.out, "isatty", lambda: False)())
        handle = open(self.log_path, "a", buffering=1, encoding="utf-8", errors="replace")  # noqa: SIM115
        self._saved.append(handle.close)  # undone last but for the console
        stream = _ScanningStream(handle, self._log_line)
        # C++ logs and subprocesses write to file descriptors 1 and 2: point them at the log.
        for fd in (1, 2):
            with contextlib.suppress(OSError):
                saved = os.dup(fd)
                _flush_std()
                os.dup2(handle.fileno(), fd)
                self._saved.append(lambda fd=fd, saved=saved: (_flush_std(), os.dup2(saved, fd), os.close(saved)))
        old_stdout, old_stderr = sys.stdout, sys.stderr
        sys.stdout = sys.stderr = stream
        self._saved.append(lambda: (setattr(sys, "stdout", old_stdout), setattr(sys, "stderr", old_stderr)))
        old_handlers, old_level = root.handlers[:], root.level
        file_handler = logging.StreamHandler(stream)
        file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root.handlers[:] = [file_handler]
        root.setLevel(logging.INFO)
        self._saved.append(lambda: (root.handlers.__setitem__(slice(None), old_handlers), root.setLevel(old_level)))
        beam = logging.getLogger(_BEAM_BUNDLE_LOGGER)
        beam_hook, beam_state = _BeamStageHook(self), (beam.level, beam.propagate)
        beam.addHandler(beam_hook)
        beam.setLevel(logging.DEBUG)
        beam.propagate = False
        self._saved.append(
            lambda: (
                beam.removeHandler(beam_hook),
                beam.setLevel(beam_state[0]),
                setattr(beam, "propagate", beam_state[1]),
            )
        )
        self._saved.append(_watch_launches(self))  # imports TFX: after the redirection
        if self.tty:
            ticker = threading.Thread(target=self._tick, name="ltr-progress", daemon=True)
            ticker.start()
            self._saved.append(lambda: (self._stop.set(), ticker.join(timeout=2)))
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc is not None and self._node is not None:
            self._clear_status()
            self._print(f"  {self._node:<30} failed after {time.monotonic() - self._started:.1f}s")
        self._clear_status()
        for undo in reversed(self._saved):
            with contextlib.suppress(Exception):
                undo()
        self._saved.clear()

    def _console_stream(self):
        """The console, as it was before the redirection (a dup of fd 1 if sys.stdout is fd 1)."""
        try:
            if self.out.fileno() == 1:
                stream = open(os.dup(1), "w", buffering=1, encoding="utf-8", errors="replace")  # noqa: SIM115
                self._saved.append(stream.close)
                return stream
        except (AttributeError, OSError, io.UnsupportedOperation):
            pass
        return self.out

    # ---- events ---------------------------------------------------------------
    def component_started(self, node: str) -> None:
        if not self.verbose:  # some libraries lower the levels on the way; the log file keeps INFO
            from absl import logging as absl_logging

            absl_logging.set_verbosity(absl_logging.INFO)
            logging.getLogger().setLevel(logging.INFO)
        with self._lock:
            self._node, self._started, self._detail, self._stages = node, time.monotonic(), "", 0
            self._last_plain = self._started

    def component_finished(self, node: str) -> None:
        seconds = time.monotonic() - self._started if self._node == node else 0.0
        with self._lock:
            self._node = None
        state, numbers = component_result(self.config, node)
        cached = " (cached)" if state == "CACHED" else ""
        self._clear_status()
        self._print(f"  {node:<30} {seconds:6.1f}s{cached}  {numbers}".rstrip())

    def beam_stage(self, name: str) -> None:
        with self._lock:
            self._stages += 1
            steps = _STAGE_PREFIX.sub("", name.split(")+(")[0]).split("-")
            label = "/".join(steps[:2])[:60]
            self._set_detail(f"Beam: {label} (bundle {self._stages})")

    def _log_line(self, line: str) -> None:
        trial = _TRIAL.search(line)
        if trial:
            self._trials = int(trial.group(1))
            self._set_detail(f"trial {self._trials}/{self.config.tuner.max_trials}")
            return
        epoch = _EPOCH.search(line)
        if epoch:
            prefix = f"trial {self._trials}/{self.config.tuner.max_trials}, " if self._node == "Tuner" else ""
            self._set_detail(f"{prefix}epoch {epoch.group(1)}/{epoch.group(2)}")

    def _set_detail(self, detail: str) -> None:
        with self._lock:
            if self._node is None:
                return
            self._detail = detail
            if self.tty or self.verbose:
                return
            now = time.monotonic()
            if now - self._last_plain >= _PLAIN_PROGRESS_EVERY_S:
                self._last_plain = now
                self._print(f"  {self._node:<30} ... {now - self._started:.0f}s, {detail}")

    # ---- console ------------------------------------------------------------------
    def _print(self, line: str) -> None:
        with self._lock:
            if line.startswith("  ") and "..." not in line[:40]:
                self.lines.append(line)
            print(line, file=self.out, flush=True)

    def _tick(self) -> None:
        spinner = "|/-\\"
        turn = 0
        while not self._stop.wait(_TTY_REFRESH_S):
            with self._lock:
                if self._node is None:
                    continue
                turn += 1
                elapsed = time.monotonic() - self._started
                text = f"  {self._node:<30} {spinner[turn % 4]} {elapsed:5.0f}s  {self._detail}"[:100]
                self.out.write("\r" + text.ljust(100))
                self.out.flush()
                self._status_shown = True

    def _clear_status(self) -> None:
        with self._lock:
            if self._status_shown:
                self.out.write("\r" + " " * 100 + "\r")
                self.out.flush()
                self._status_shown = False


def _flush_std() -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()


# ---- per-component results, from MLMD --------------------------------------------------
def component_result(config: Config, node: str) -> tuple[str, str]:
    """(state, the numbers that matter) of the node's latest execution in MLMD."""
    from ml_metadata.proto import metadata_store_pb2
    from tfx.dsl.compiler import constants

    from pipeline.report import open_store

    store = open_store(config.metadata_path)
    context = store.get_context_by_type_and_name(constants.NODE_CONTEXT_TYPE_NAME, f"{config.pipeline_name}.{node}")
    if context is None:
        return "UNKNOWN", ""
    executions = store.get_executions_by_context(context.id)
    if not executions:
        return "UNKNOWN", ""
    execution = max(executions, key=lambda e: e.id)
    state = metadata_store_pb2.Execution.State.Name(execution.last_known_state)
    # Resolver nodes record what they resolved as INTERNAL_OUTPUT events.
    kinds = (metadata_store_pb2.Event.OUTPUT, metadata_store_pb2.Event.INTERNAL_OUTPUT)
    events = [e for e in store.get_events_by_execution_ids([execution.id]) if e.type in kinds]
    artifacts = store.get_artifacts_by_id(sorted({e.artifact_id for e in events}))
    type_names = {t.id: t.name for t in store.get_artifact_types()}
    outputs: dict[str, list] = {}
    for artifact in artifacts:
        outputs.setdefault(type_names[artifact.type_id], []).append(artifact)
    try:
        return state, describe_outputs(outputs)
    except (OSError, ValueError, KeyError) as error:
        return state, f"(outputs unreadable: {error})"


def _prop(artifact, name: str, default=None):
    props = artifact.custom_properties
    if name not in props:
        return default
    value = props[name]
    return getattr(value, value.WhichOneof("value"))


def _read_json(directory: str, name: str):
    with open(os.path.join(directory, name)) as handle:
        return json.load(handle)


def describe_outputs(outputs: dict[str, list]) -> str:
    """The one or two numbers that matter about a component's outputs."""
    if "PushedModel" in outputs:
        pushed = outputs["PushedModel"][-1]
        if _prop(pushed, "pushed", 0):
            return f"registered {_prop(pushed, 'model_name', '')} version {_prop(pushed, 'pushed_version')}"
        return f"not registered: {_prop(pushed, 'pushed_reason', '')}"
    if "InfraBlessing" in outputs:
        check = outputs["InfraBlessing"][-1]
        if not _prop(check, "blessed", 0):
            return f"not passed: {_prop(check, 'blessing_message', '')}"
        p50 = _prop(check, "latency_ms_serving_default_100docs_p50")
        latency = f", p50 {p50:.1f} ms for 100 documents" if p50 is not None else ""
        return f"servable (load {_prop(check, 'load_s', float('nan')):.1f} s{latency})"
    if "ModelEvaluation" in outputs:
        evaluation = outputs["ModelEvaluation"][-1]
        blessed = "blessed" if _prop(evaluation, "blessed", 0) else "NOT blessed"
        return f"{blessed}: {_prop(evaluation, 'blessing_message', '')}"
    if "ModelRun" in outputs:
        metrics = _read_json(outputs["ModelRun"][-1].uri, "metrics.json")
        history = metrics.get("validation_history") or [float("nan")]
        if "trees" in metrics:  # the trees scorer: one fit, no epochs
            return (
                f"gradient-boosted trees: {metrics['trees']} trees on {metrics.get('train_documents', 0):,} "
                f"documents, val NDCG@10 {history[-1]:.4f}"
            )
        members = metrics.get("ensemble") or []
        line = (
            f"{metrics.get('train_steps')} steps, {metrics.get('epochs_run')} epochs, "
            f"final val NDCG@10 {history[-1]:.4f} (best epoch {metrics.get('best_epoch')})"
        )
        if len(members) > 1:  # the run's curves are the first member's; the served model is their mean
            ndcg = metrics.get("eval", {}).get("ndcg_10", float("nan"))
            line = f"ensemble of {len(members)} models, val NDCG@10 {ndcg:.4f}; first model: {line}"
        return line
    if "TunerResults" in outputs:
        results = _read_json(outputs["TunerResults"][-1].uri, "tuner_results.json")
        best = max((r["score"] for r in results if r.get("score") is not None), default=float("nan"))
        uri = outputs["TunerResults"][-1].uri
        selection = (
            _read_json(uri, "selection.json").get("summary") if os.path.exists(f"{uri}/selection.json") else None
        )
        chosen = f"; selected: {selection}" if selection else ""
        return f"{len(results)} trial(s), best val NDCG@10 {best:.4f}{chosen}"
    if "Examples" in outputs:
        e = outputs["Examples"][-1]
        splits = json.loads(e.properties["split_names"].string_value) if "split_names" in e.properties else []
        lists = sum(_prop(e, f"{s}_lists", 0) for s in splits)
        docs = sum(_prop(e, f"{s}_documents", 0) for s in splits)
        per_split = " / ".join(f"{s} {_prop(e, f'{s}_lists', 0):,}" for s in splits)
        return (
            f"span {_prop(e, 'span', 0)}: {lists:,} lists, {docs:,} documents ({per_split} lists), "
            f"{_prop(e, 'bad_rows', 0):,} bad rows"
        )
    if "TransformGraph" in outputs:
        return "transform graph"
    if "Schema" in outputs:
        with open(os.path.join(outputs["Schema"][-1].uri, "schema.pbtxt")) as handle:
            text = handle.read()
        return f"{len(re.findall(r'^feature {', text, re.M))} features"
    if "HyperParameters" in outputs:
        return f"hyperparameters from {outputs['HyperParameters'][-1].uri}"
    if "Model" in outputs:
        return f"baseline: model {outputs['Model'][-1].id}"
    return "baseline: none" if not outputs else ""
