"""Evaluates the candidate, the serving model and a trivial ranker on one split; decides the blessing.

The baseline is the version the model registry serves now (``ltr registry rollback``
moves it), read from the registry's own copy: exactly the model that answers
requests. Its MLMD Model artifact id, recorded by the Pusher when it registered the
version, is stored on the evaluation and the blessing, so lineage links the two.
A ``baseline_model`` channel, when wired, takes precedence (pipelines composed by hand).

With a ``propensities`` input (click labels, ``training.position_bias: ipw``) the
NDCGs of the candidate, the baseline and the trivial ranker are all
propensity-weighted: each document's gain is multiplied by the weight the Trainer
gave it, ``min(1 / propensity(position), ipw_max_weight)``. Raw clicks favour the
order they were logged in; the weighted metric is the counterfactual estimate of
the ranking's quality by relevance. The reason, the report and the evaluation's
``weighting`` say which metric was used.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
from absl import logging
from tensorflow_metadata.proto.v0 import schema_pb2
from tfx.components.evaluator import constants
from tfx.dsl.components.base import base_executor
from tfx.types import artifact_utils
from tfx.utils import io_utils, path_utils

from components.propensity_estimator.spec import PROPENSITIES_KEY
from components.ranking_evaluator import scoring
from components.ranking_evaluator.gate import Gate, judge
from modules.features import Role, feature_set_from_schema
from modules.memory import release_memory
from modules.training.position_bias import load_propensities

EVALUATION_FILE = "evaluation.json"


@dataclasses.dataclass(frozen=True)
class Baseline:
    saved_model_dir: str
    description: str  # for logs and the report
    model_artifact_id: int | None  # MLMD id of the baseline's Model artifact, when known
    model_uri: str | None
    registry_version: int | None


def _keys(schema_artifact, slice_features: list[str]) -> scoring.Keys:
    schema = io_utils.parse_pbtxt_file(io_utils.get_only_uri_in_dir(schema_artifact.uri), schema_pb2.Schema())
    features = feature_set_from_schema(schema)
    context = {f.name for f in features.context_protos}
    for name in slice_features:
        if name not in context:
            raise ValueError(
                f"evaluation.slices names '{name}', which is not a context feature of the schema "
                f"(context features: {sorted(context)})"
            )
    position = features.single(Role.POSITION)
    return scoring.Keys(features.label.name, position.name if position else None, tuple(slice_features))


def _span(examples) -> int | None:
    if examples.has_property("span"):
        return int(examples.span)
    if examples.has_custom_property("span"):
        return examples.get_int_custom_property("span")
    return None


@contextlib.contextmanager
def _served_baseline(exec_properties: dict[str, Any]) -> Iterator[Baseline | None]:
    """The registry's served version of the model (None before the first registration)."""
    model_name = exec_properties.get("model_name")
    if not model_name:
        yield None
        return
    # Imported here: the Pusher's package imports this executor (for EVALUATION_FILE).
    from components.registry_pusher.backends import open_registry

    backend = exec_properties.get("registry_backend") or "local"
    registry = open_registry(
        backend,
        exec_properties["registry_root"],
        exec_properties.get("mlflow_tracking_uri") or "",
        exec_properties.get("mlflow_experiment") or "",
    )
    version = registry.serving_version(model_name)
    if version is None:
        yield None
        return
    registered = registry.get(model_name, version)
    model_id = registered.metadata.get("model_artifact_id")
    description = f"{backend} registry '{model_name}' version {version} (served)"
    with contextlib.ExitStack() as stack:
        path = registered.path
        if backend != "local":  # MLflow: a scratch copy, removed after scoring
            scratch = stack.enter_context(tempfile.TemporaryDirectory(prefix="ltr-baseline-"))
            path = registry.download(model_name, version, scratch)
        yield Baseline(
            saved_model_dir=path,
            description=description,
            model_artifact_id=None if model_id in (None, "") else int(model_id),
            model_uri=registered.metadata.get("model_uri") or registered.source or None,
            registry_version=version,
        )


@contextlib.contextmanager
def _baseline(input_dict, exec_properties) -> Iterator[Baseline | None]:
    wired = input_dict.get("baseline_model") or []
    if wired:
        model = wired[0]
        yield Baseline(path_utils.serving_model_path(model.uri), f"model {model.id} (wired)", model.id, model.uri, None)
        return
    with _served_baseline(exec_properties) as served:
        yield served


def _gate(exec_properties) -> Gate:
    min_value = exec_properties.get("min_value")
    return Gate(
        metric=exec_properties["metric"],
        max_regression=float(exec_properties["max_regression"]),
        min_lift=float(exec_properties["min_lift"]),
        min_value=None if min_value is None else float(min_value),
    )


CANDIDATE, BASELINE, TRIVIAL = "candidate", "baseline", "trivial"
UNWEIGHTED, IPW = "unweighted", "propensity-weighted (ipw)"


def _gain_weights(input_dict, exec_properties) -> tuple[Callable[[np.ndarray], np.ndarray] | None, float | None]:
    """Inverse propensity gain weights per document position (the Trainer's) and their clip; (None, None)
    without a Propensities input."""
    artifacts = input_dict.get(PROPENSITIES_KEY) or []
    if not artifacts:
        return None, None
    propensities = load_propensities(artifact_utils.get_single_instance(artifacts).uri)
    max_weight = exec_properties.get("ipw_max_weight")
    max_weight = 10.0 if max_weight is None else float(max_weight)
    return (lambda positions: propensities.weights(positions, max_weight)), max_weight


class Executor(base_executor.BaseExecutor):
    def Do(self, input_dict, output_dict, exec_properties) -> None:
        examples = artifact_utils.get_single_instance(input_dict["examples"])
        model = artifact_utils.get_single_instance(input_dict["model"])
        evaluation = artifact_utils.get_single_instance(output_dict["evaluation"])
        blessing = artifact_utils.get_single_instance(output_dict["blessing"])
        gate = _gate(exec_properties)
        split = exec_properties.get("split") or "test"
        batch_size = int(exec_properties.get("batch_size") or 64)
        available = artifact_utils.decode_split_names(examples.split_names)
        if split not in available:
            raise ValueError(
                f"the Examples artifact {examples.uri} has splits {available}, not '{split}', which the "
                "RankingEvaluator judges on: the test split must be lists neither fitted nor selected on"
            )
        files = scoring.record_files(artifact_utils.get_split_uri([examples], split))
        keys = _keys(
            artifact_utils.get_single_instance(input_dict["schema"]),
            json.loads(exec_properties.get("slice_features") or "[]"),
        )
        trivial_name = "logged order" if keys.position else "random order"
        gain_weights, max_weight = _gain_weights(input_dict, exec_properties)
        weighting = UNWEIGHTED if gain_weights is None else IPW

        with _baseline(input_dict, exec_properties) as baseline:
            scorers = {CANDIDATE: scoring.ServingScorer(path_utils.serving_model_path(model.uri))}
            if baseline is not None:
                scorers[BASELINE] = scoring.ServingScorer(baseline.saved_model_dir)
            table = scoring.score_lists(scoring.read_batches(files, batch_size), keys, scorers, TRIVIAL, gain_weights)
        del scorers  # the loaded SavedModels: hand their memory back before the next component
        release_memory("scoring with the RankingEvaluator")
        candidate = {**table.summary(CANDIDATE), "documents_without_label": table.missing_labels}
        trivial = table.summary(TRIVIAL)
        baseline_result = table.summary(BASELINE) if baseline is not None else None
        logging.info("Candidate model %s on split '%s' (%s): %s", model.id, split, weighting, candidate["metrics"])
        logging.info("Trivial ranker (%s): %s", trivial_name, trivial["metrics"])
        if baseline is not None:
            logging.info("Baseline %s: %s", baseline.description, baseline_result["metrics"])
        judgement = judge(
            candidate["metrics"], baseline_result and baseline_result["metrics"], gate, trivial["metrics"], trivial_name
        )
        if gain_weights is not None:  # the number means one thing wherever the reason is shown
            judgement = dataclasses.replace(judgement, reason=f"{IPW}: {judgement.reason}")
        logging.info("Blessed: %s (%s)", judgement.blessed, judgement.reason)

        report = {
            "split": split,
            "span": _span(examples),
            "model_artifact_id": model.id,
            "model_uri": model.uri,
            # unweighted | propensity-weighted (ipw): the NDCGs' gains times min(1/propensity, ipw_max_weight)
            "weighting": weighting,
            "ipw_max_weight": max_weight,
            **candidate,
            "baseline": None
            if baseline is None
            else {
                "model_artifact_id": baseline.model_artifact_id,
                "model_uri": baseline.model_uri,
                "registry_version": baseline.registry_version,
                "description": baseline.description,
                **baseline_result,
            },
            "trivial": {"ranker": trivial_name, **trivial},
            # Candidate minus baseline on the gated metric, paired over the same lists.
            "difference": table.difference(gate.metric, CANDIDATE, BASELINE),
            "difference_to_trivial": table.difference(gate.metric, CANDIDATE, TRIVIAL),
            "slices": table.slices(gate.metric, CANDIDATE, BASELINE, _span(examples)),
            "gate": dataclasses.asdict(gate),
            "blessed": judgement.blessed,
            "reason": judgement.reason,
        }
        io_utils.write_string_file(os.path.join(evaluation.uri, EVALUATION_FILE), json.dumps(report, indent=2))
        for name, value in candidate["metrics"].items():
            evaluation.set_float_custom_property(name, value)
            evaluation.set_float_custom_property(f"trivial_{name}", trivial["metrics"][name])
            if baseline_result is not None:
                evaluation.set_float_custom_property(f"baseline_{name}", baseline_result["metrics"][name])
        evaluation.set_int_custom_property("lists", candidate["lists"])
        evaluation.set_string_custom_property("weighting", weighting)
        evaluation.set_int_custom_property("model_id", model.id)
        evaluation.set_int_custom_property(constants.ARTIFACT_PROPERTY_BLESSED_KEY, int(judgement.blessed))
        evaluation.set_string_custom_property(constants.ARTIFACT_PROPERTY_BLESSING_MESSAGE_KEY, judgement.reason)

        # The same properties and marker file as TFX's Evaluator, so TFX's
        # LatestBlessedModelStrategy and Pusher conventions apply unchanged.
        blessed_value = constants.BLESSED_VALUE if judgement.blessed else constants.NOT_BLESSED_VALUE
        marker = constants.BLESSED_FILE_NAME if judgement.blessed else constants.NOT_BLESSED_FILE_NAME
        io_utils.write_string_file(os.path.join(blessing.uri, marker), "")
        blessing.set_int_custom_property(constants.ARTIFACT_PROPERTY_BLESSED_KEY, blessed_value)
        blessing.set_string_custom_property(constants.ARTIFACT_PROPERTY_CURRENT_MODEL_URI_KEY, model.uri)
        blessing.set_int_custom_property(constants.ARTIFACT_PROPERTY_CURRENT_MODEL_ID_KEY, model.id)
        blessing.set_string_custom_property(constants.ARTIFACT_PROPERTY_BLESSING_MESSAGE_KEY, judgement.reason)
        if baseline is not None:
            for artifact in (evaluation, blessing):
                if baseline.model_uri:
                    artifact.set_string_custom_property(
                        constants.ARTIFACT_PROPERTY_BASELINE_MODEL_URI_KEY, baseline.model_uri
                    )
                if baseline.model_artifact_id is not None:
                    artifact.set_int_custom_property(
                        constants.ARTIFACT_PROPERTY_BASELINE_MODEL_ID_KEY, baseline.model_artifact_id
                    )
                if baseline.registry_version is not None:
                    artifact.set_int_custom_property("baseline_registry_version", baseline.registry_version)
