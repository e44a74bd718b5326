"""Saves the schema-driven ELWC decoder as the DataView SavedModel."""

from __future__ import annotations

from tfx.dsl.components.base import base_executor
from tfx.types import artifact_utils
from tfx.utils import io_utils
from tfx_bsl.coders import tf_graph_record_decoder

from modules.elwc_decoder import ElwcDecoder
from modules.features import load_feature_set


class Executor(base_executor.BaseExecutor):
    def Do(self, input_dict, output_dict, exec_properties) -> None:
        schema_file = io_utils.get_only_uri_in_dir(artifact_utils.get_single_uri(input_dict["schema"]))
        decoder = ElwcDecoder(load_feature_set(schema_file))
        tf_graph_record_decoder.save_decoder(decoder, artifact_utils.get_single_uri(output_dict["data_view"]))
