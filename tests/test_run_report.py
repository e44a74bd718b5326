"""``ltr report`` on a finished end-to-end run (the session's ``pipeline_run``), and in a real browser.

The browser tests drive Debian's headless Chromium (installed by ``make browser``, which
``make test`` runs): the page loads without console messages, and a screenshot at laptop
width shows every chart with coloured data marks in it.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from contextlib import redirect_stdout
from pathlib import Path

import pytest

from pipeline import cli
from pipeline.run_report import read as report_read

NS = "{http://www.w3.org/2000/svg}"
SECTIONS = ("evaluation", "tuner", "training", "data", "lineage", "run")


def _cli(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    with redirect_stdout(out):
        code = cli.main(list(argv))
    return code, out.getvalue()


def _locate(config) -> list[str]:
    return ["--metadata-path", config.metadata_path, "--registry-root", config.registry_root]


def _charts(page: str) -> list[ET.Element]:
    return [ET.fromstring(m) for m in re.findall(r"<svg .*?</svg>", page, flags=re.S)]


def _chart(charts: list[ET.Element], title: str) -> ET.Element:
    found = [c for c in charts if c.find(f"{NS}title").text == title]
    assert len(found) == 1, [c.find(f"{NS}title").text for c in charts]
    return found[0]


def _dots(chart: ET.Element, series: str) -> list[str]:
    return [
        c.find(f"{NS}title").text
        for c in chart.iter(f"{NS}circle")
        if c.get("class") == "data" and re.match(rf"{re.escape(series)}[:,]", c.find(f"{NS}title").text)
    ]


@pytest.fixture(scope="module")
def report_page(pipeline_run, tmp_path_factory):
    config, run = pipeline_run
    out = tmp_path_factory.mktemp("report")
    code, printed = _cli("report", "--run", run.run_id, "--out", str(out), *_locate(config))
    assert code == 0
    path = out / "index.html"
    assert printed.strip() == str(path)
    return config, run, path


def test_the_report_of_a_finished_run_shows_each_section_with_data(report_page):
    config, run, path = report_page
    page = path.read_text()
    for anchor in SECTIONS:
        assert f'<section id="{anchor}">' in page, anchor
    evaluation = run.evaluation
    assert ('<section id="slices">' in page) == bool(evaluation.get("slices"))
    charts = _charts(page)
    for chart in charts:  # every chart has data marks and labelled axes
        assert any("data" in (e.get("class") or "").split() for e in chart.iter()), chart.find(f"{NS}title").text
        assert any(e.get("class") == "axis-label" for e in chart.iter(f"{NS}text"))

    # Candidate vs baseline: the evaluator's numbers, the gate threshold on the gated metric.
    metrics = _chart(charts, "Candidate vs baseline per metric on the test split")
    candidate = _dots(metrics, "candidate")
    assert candidate == [
        f"candidate, {label}: {evaluation['metrics'][key]:.4f}"
        for key, label in (("ndcg_1", "NDCG@1"), ("ndcg_5", "NDCG@5"), ("ndcg_10", "NDCG@10"), ("mrr", "MRR"))
    ]
    assert any("threshold" in (e.get("class") or "") for e in metrics.iter(f"{NS}line"))

    # Tuner: one dot per trial in the Tuner's tuner_results.json.
    with open(os.path.join(run.artifact("TunerResults").uri, report_read.TUNER_RESULTS_FILE)) as handle:
        trials = json.load(handle)
    assert 1 <= len(trials) <= config.tuner.max_trials
    assert len(_dots(_chart(charts, "Tuner trials"), "trial objective")) == len(trials)

    # Training: one point per epoch run, and the validation curve is metrics.json's history.
    with open(os.path.join(run.artifact("ModelRun").uri, "metrics.json")) as handle:
        training = json.load(handle)
    loss = _chart(charts, "Training and validation loss")
    assert len(_dots(loss, "train")) == len(_dots(loss, "validation")) == training["epochs_run"]
    validation = _dots(_chart(charts, "Training and validation NDCG@10"), "validation")
    assert [float(t.rsplit(" ", 1)[1]) for t in validation] == pytest.approx(training["validation_history"], abs=1e-4)

    # Data: the ExampleGen summary's counts.
    with open(os.path.join(run.artifact("Examples").uri, report_read.SUMMARY_FILE)) as handle:
        summary = json.load(handle)
    sizes = _chart(charts, "Documents per list")
    bars = [e for e in sizes.iter(f"{NS}rect") if e.get("class") == "data"]
    assert len(bars) == len(summary["list_size"]["histogram"])
    assert f'<td class="num">{summary["rows_read"]}</td>' in page

    # Lineage of the registered version.
    registration = run.registration
    assert registration["pushed"]
    assert f"Registered as <b>{registration['model_name']} version {registration['version']}</b>" in page
    assert f"artifact {run.artifact('Model').id}" in page and "ImportSchemaGen" in page
    # A plain file: nothing to fetch at view time.
    assert not re.search(r"<(script|link|img|iframe)\b|url\(|@import", page)


def test_ltr_run_writes_the_report_and_prints_its_path(pipeline_run, capsys):
    config, run = pipeline_run
    cli._print_run_report(config, run)  # the call `ltr run` makes after its summary
    line = capsys.readouterr().out.strip()
    assert line.startswith("Run report:")
    path = Path(line.split(":", 1)[1].strip())
    assert path.is_file() and path.is_relative_to(Path(config.pipeline_root).resolve())
    assert f"Run report: {run.run_id}" in path.read_text()


def test_a_damaged_event_file_is_refused_by_name(pipeline_run, tmp_path):
    _, run = pipeline_run
    (source,) = Path(run.artifact("ModelRun").uri, report_read.TENSORBOARD_DIR, "validation").glob("events.out.*")
    assert report_read.read_scalars(str(source.parent))["epoch_ndcg_10"]
    damaged = tmp_path / source.name
    content = bytearray(source.read_bytes())
    content[len(content) // 2] ^= 0xFF
    damaged.write_bytes(bytes(content))
    with pytest.raises(ValueError, match=f"{re.escape(str(damaged))}: corrupt record"):
        report_read.read_scalars(str(tmp_path))


def test_versions_report_compares_the_registered_versions(pipeline_run, tmp_path):
    config, _ = pipeline_run
    code, printed = _cli("report", "--versions", "--out", str(tmp_path), *_locate(config))
    assert code == 0 and printed.strip() == str(tmp_path / "index.html")
    page = (tmp_path / "index.html").read_text()
    (chart,) = _charts(page)
    # One point per registered version (the session's other tests may have registered more than one).
    versions = [d for d in os.listdir(os.path.join(config.registry_root, config.model_name)) if d.isdigit()]
    assert len(_dots(chart, "NDCG@10")) == len(versions) >= 1
    assert any((t.text or "").startswith("served: version") for t in chart.iter(f"{NS}text"))


def test_an_unknown_run_is_a_clear_error(pipeline_run, capsys):
    config, _ = pipeline_run
    code, _ = _cli("report", "--run", "no-such-run", *_locate(config))
    assert code == 1
    assert "MLMD records no pipeline run 'no-such-run'; the latest are:" in capsys.readouterr().err


# ---------------------------------------------------------------- a real browser

CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser") if shutil.which(n)), None)
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed and could not be (`make browser` installs it with apt-get)"
)
# Measures each chart's box in the laid-out page; appended to a copy of the page only.
MEASURE = """<script>
const boxes = [...document.querySelectorAll("svg")].map(s => { const r = s.getBoundingClientRect();
  return {title: s.querySelector("title").textContent, x: r.left + scrollX, y: r.top + scrollY, w: r.width,
          h: r.height}; });
document.body.insertAdjacentHTML("beforeend", "<pre id='measured' hidden>" + JSON.stringify({boxes,
  height: document.documentElement.scrollHeight, scrollWidth: document.documentElement.scrollWidth}) + "</pre>");
</script>"""


def _chromium(tmp_path: Path, url: str, *mode: str, width: int = 1280, height: int = 2400):
    flags = [
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
        "--force-device-scale-factor=1", f"--user-data-dir={tmp_path / 'chromium-profile'}",
        "--enable-logging=stderr", "--v=0", f"--window-size={width},{height}",
    ]  # fmt: skip
    return subprocess.run([CHROMIUM, *flags, *mode, url], capture_output=True, text=True, timeout=180)


def _console(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if ":CONSOLE" in line]


@needs_chromium
def test_the_page_loads_in_chromium_without_console_messages(report_page, tmp_path):
    # The check can fail: a page that logs an error is caught.
    canary = tmp_path / "canary.html"
    canary.write_text('<!DOCTYPE html><html><body><script>console.error("canary")</script></body></html>')
    assert any('"canary"' in line for line in _console(_chromium(tmp_path, canary.as_uri(), "--dump-dom").stderr))
    _, _, path = report_page
    result = _chromium(tmp_path, path.as_uri(), "--dump-dom")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Candidate vs baseline" in result.stdout  # the page really loaded
    assert _console(result.stderr) == []


@needs_chromium
def test_a_screenshot_at_laptop_width_shows_every_chart(report_page, tmp_path):
    from PIL import Image

    _, _, path = report_page
    measured_page = tmp_path / "measured.html"
    measured_page.write_text(path.read_text().replace("</body>", MEASURE + "</body>"))
    dom = _chromium(tmp_path, measured_page.as_uri(), "--dump-dom").stdout
    layout = json.loads(re.search(r"<pre id=\"measured\" hidden=\"\">(.*?)</pre>", dom, flags=re.S).group(1))
    assert layout["scrollWidth"] <= 1280  # nothing wider than a laptop screen
    assert len(layout["boxes"]) == len(_charts(path.read_text())) >= 6

    shot = tmp_path / "report.png"
    height = max(2400, int(layout["height"]))
    result = _chromium(tmp_path, path.as_uri(), f"--screenshot={shot}", height=height)
    assert shot.is_file(), result.stderr[-2000:]
    image = Image.open(shot).convert("RGB")
    assert image.size == (1280, height)
    for box in layout["boxes"]:
        assert box["w"] >= 300 and box["h"] >= 80, box  # readable size
        crop = image.crop((int(box["x"]), int(box["y"]), int(box["x"] + box["w"]), int(box["y"] + box["h"])))
        pixels = list(crop.getdata())
        # Data marks are coloured; axes, grid and text are grey: a blank or text-only chart has no colour.
        coloured = sum(1 for r, g, b in pixels if max(r, g, b) - min(r, g, b) > 60)
        assert coloured >= 40, (box["title"], coloured)
        assert len(set(pixels)) >= 8, box["title"]
    if os.environ.get("LTR_REPORT_SCREENSHOT"):  # keep the screenshot to look at
        shutil.copy(shot, os.environ["LTR_REPORT_SCREENSHOT"])


def test_the_file_names_the_report_reads_are_the_ones_the_components_write():
    from tfx.components.tuner import executor as tuner_executor

    from components.elwc_example_gen.summary import SUMMARY_FILE
    from components.ranking_evaluator.executor import EVALUATION_FILE
    from modules.training.model import VAL_NDCG_METRIC
    from modules.training.trainer import LOGS_DIR

    assert report_read.TUNER_RESULTS_FILE == tuner_executor._DEFAULT_TUNER_RESULTS_FILE_NAME
    assert report_read.EVALUATION_FILE == EVALUATION_FILE
    assert report_read.SUMMARY_FILE == SUMMARY_FILE
    assert report_read.TENSORBOARD_DIR == LOGS_DIR
    assert report_read.TUNER_OBJECTIVE == VAL_NDCG_METRIC


def test_a_dcg_gate_draws_the_dcgs_on_their_own_axis():
    from pipeline.run_report.render import metrics_chart

    metrics = {"ndcg_10": 0.52, "mrr": 0.50, "dcg_1": 0.78, "dcg_10": 3.14}
    evaluation = {
        "metrics": metrics,
        "trivial": {"ranker": "logged order", "metrics": {**metrics, "dcg_10": 2.80}},
        "gate": {"metric": "dcg_10", "min_lift": 0.01, "max_regression": 0.01},
    }
    chart = metrics_chart(evaluation)
    assert "DCG@10" in chart and "DCG@1" in chart and "gate: ≥ 2.81" in chart
    assert "NDCG" not in chart and "MRR" not in chart  # [0, 1] metrics would be squashed against DCG's scale
    ndcg_gated = metrics_chart({**evaluation, "gate": {**evaluation["gate"], "metric": "ndcg_10"}})
    assert "NDCG@10" in ndcg_gated and "MRR" in ndcg_gated and ">DCG@1<" not in ndcg_gated
