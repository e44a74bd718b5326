"""ElwcDataView: a TFX DataView whose decoder parses ELWC as the schema says.

TFX's own ``TfGraphDataViewProvider`` takes a zero-argument decoder factory;
this component instead builds the decoder from the imported Schema artifact,
so the decoding Transform sees is linked to that schema in MLMD. Bind it to the
Examples with TFX's ``DataViewBinder``.
"""

from tfx import types
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import standard_artifacts

from components.elwc_data_view import executor
from components.elwc_data_view.spec import ElwcDataViewSpec


class ElwcDataView(base_component.BaseComponent):
    SPEC_CLASS = ElwcDataViewSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

    def __init__(self, schema: types.BaseChannel):
        super().__init__(
            spec=ElwcDataViewSpec(schema=schema, data_view=types.Channel(type=standard_artifacts.DataView))
        )
