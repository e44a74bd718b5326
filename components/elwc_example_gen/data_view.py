"""Attaches the schema-driven ELWC decoder to the Examples artifact as its DataView.

TFX reads FORMAT_PROTO examples through a DataView: a TF-graph decoder saved as
a SavedModel whose URI is a custom property of the Examples artifact (what
TFX's experimental ``DataViewBinder`` sets). Writing the decoder here, inside
the artifact the ExampleGen produces, replaces the provider + binder pair:
fewer nodes, the decoder is linked to the schema the ExampleGen consumed, and
the pipeline compiles for Kubeflow V2 / Vertex, whose compiler rejects TFX's
``DataView`` artifact type.
"""

from __future__ import annotations

import os
import time

from tfx.components.experimental.data_view import constants
from tfx.types import Artifact
from tfx_bsl.coders import tf_graph_record_decoder

from modules.features import FeatureSet
from modules.transform.decoder import ElwcDecoder

DATA_VIEW_DIR = "data_view"


def attach_data_view(examples: Artifact, feature_set: FeatureSet) -> str:
    """Saves the decoder under ``<examples.uri>/data_view`` and binds it; returns its URI."""
    uri = os.path.join(examples.uri, DATA_VIEW_DIR)
    tf_graph_record_decoder.save_decoder(ElwcDecoder(feature_set), uri)
    examples.set_string_custom_property(constants.DATA_VIEW_URI_PROPERTY_KEY, uri)
    # TFX picks the newest DataView when several Examples artifacts are read together.
    examples.set_string_custom_property(constants.DATA_VIEW_CREATE_TIME_KEY, str(int(time.time() * 1000)))
    return uri
