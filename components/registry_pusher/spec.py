"""ComponentSpec of the registry Pusher."""

from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter, ComponentSpec, ExecutionParameter


class RegistryPusherSpec(ComponentSpec):
    PARAMETERS = {
        "registry_root": ExecutionParameter(type=str),
        "model_name": ExecutionParameter(type=str),
        "backend": ExecutionParameter(type=str, optional=True),  # local (default) | mlflow
        "mlflow_tracking_uri": ExecutionParameter(type=str, optional=True),
        "mlflow_experiment": ExecutionParameter(type=str, optional=True),
    }
    INPUTS = {
        "model": ChannelParameter(type=standard_artifacts.Model),
        # Without a blessing every model is pushed (as TFX's Pusher without one).
        "model_blessing": ChannelParameter(type=standard_artifacts.ModelBlessing, optional=True),
        # The serving check's verdict (components/serving_check); when blessed it holds the
        # model with its TF Serving warmup requests, which is then what gets registered.
        "infra_blessing": ChannelParameter(type=standard_artifacts.InfraBlessing, optional=True),
        "model_evaluation": ChannelParameter(type=standard_artifacts.ModelEvaluation, optional=True),
        "model_run": ChannelParameter(type=standard_artifacts.ModelRun, optional=True),
        # Only read for lineage (spans, versions, artifact ids) recorded with the version.
        "examples": ChannelParameter(type=standard_artifacts.Examples, optional=True),
    }
    OUTPUTS = {
        "pushed_model": ChannelParameter(type=standard_artifacts.PushedModel),
    }
