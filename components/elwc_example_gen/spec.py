"""ComponentSpec of the ELWC ExampleGen: FileBasedExampleGen's parameters plus the schema and ingestion options."""

from tfx.proto import example_gen_pb2, range_config_pb2
from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter, ComponentSpec, ExecutionParameter

MAX_LIST_SIZE_KEY = "max_list_size"
INPUT_FORMAT_KEY = "input_format"
FORMAT_OPTIONS_KEY = "format_options"
MAX_BAD_ROW_FRACTION_KEY = "max_bad_row_fraction"
EVENTS_KEY = "events_options"


class ElwcExampleGenSpec(ComponentSpec):
    PARAMETERS = {
        "input_base": ExecutionParameter(type=str),
        "input_config": ExecutionParameter(type=example_gen_pb2.Input),
        "output_config": ExecutionParameter(type=example_gen_pb2.Output),
        "output_data_format": ExecutionParameter(type=int),
        "output_file_format": ExecutionParameter(type=int),
        "range_config": ExecutionParameter(type=range_config_pb2.RangeConfig, optional=True),
        MAX_LIST_SIZE_KEY: ExecutionParameter(type=int),
        # FormatOptions as JSON: format, column names, LETOR feature map (see formats.py).
        FORMAT_OPTIONS_KEY: ExecutionParameter(type=str),
        MAX_BAD_ROW_FRACTION_KEY: ExecutionParameter(type=float),
        # examples.events as JSON (events.EventsOptions): labels made from events; absent: from the label column.
        EVENTS_KEY: ExecutionParameter(type=str, optional=True),
    }
    INPUTS = {
        "schema": ChannelParameter(type=standard_artifacts.Schema),
    }
    OUTPUTS = {
        "examples": ChannelParameter(type=standard_artifacts.Examples),
    }
