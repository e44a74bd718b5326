"""ComponentSpec of the ELWC ExampleGen: FileBasedExampleGen's parameters plus the schema."""

from tfx.proto import example_gen_pb2, range_config_pb2
from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter, ComponentSpec, ExecutionParameter

MAX_LIST_SIZE_KEY = "max_list_size"


class ElwcExampleGenSpec(ComponentSpec):
    PARAMETERS = {
        "input_base": ExecutionParameter(type=str),
        "input_config": ExecutionParameter(type=example_gen_pb2.Input),
        "output_config": ExecutionParameter(type=example_gen_pb2.Output),
        "output_data_format": ExecutionParameter(type=int),
        "output_file_format": ExecutionParameter(type=int),
        "range_config": ExecutionParameter(type=range_config_pb2.RangeConfig, optional=True),
        MAX_LIST_SIZE_KEY: ExecutionParameter(type=int),
    }
    INPUTS = {
        "schema": ChannelParameter(type=standard_artifacts.Schema),
    }
    OUTPUTS = {
        "examples": ChannelParameter(type=standard_artifacts.Examples),
    }
