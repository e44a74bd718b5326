"""ComponentSpec of the ELWC DataView provider."""

from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter, ComponentSpec


class ElwcDataViewSpec(ComponentSpec):
    PARAMETERS = {}
    INPUTS = {"schema": ChannelParameter(type=standard_artifacts.Schema)}
    OUTPUTS = {"data_view": ChannelParameter(type=standard_artifacts.DataView)}
