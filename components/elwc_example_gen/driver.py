"""Span/version-aware driver: picks the input files before the executor runs.

TFX's FileBasedInputProcessor resolves ``{SPAN}``/``{VERSION}`` patterns: the
latest span and its latest version by default, or exactly the span given by a
static ``RangeConfig``. This driver adds the guarantee a scheduled retraining
needs: a requested span that does not exist is an error naming the span and
the pattern, never a silent fall-back to other data.
"""

from __future__ import annotations

from collections.abc import Iterable

from tfx.components.example_gen import driver, input_processor, utils
from tfx.proto import example_gen_pb2, range_config_pb2
from tfx.utils import io_utils

from components.elwc_example_gen.events import EventsOptions, events_pattern_for
from components.elwc_example_gen.spec import EVENTS_KEY


class SpanNotFoundError(FileNotFoundError):
    pass


class ElwcInputProcessor(input_processor.FileBasedInputProcessor):
    def resolve_span_and_version(self):
        try:
            return super().resolve_span_and_version()
        except ValueError as error:
            requested = ""
            if self._range_config and self._range_config.HasField("static_range"):
                requested = f" span {self._range_config.static_range.start_span_number}"
            patterns = [split.pattern for split in self._splits]
            raise SpanNotFoundError(
                f"no input for requested{requested or ' data'} under '{self._input_base_uri}' "
                f"with pattern(s) {patterns}: {error}"
            ) from error


class ElwcDriver(driver.FileBasedDriver):
    def get_input_processor(
        self,
        splits: Iterable[example_gen_pb2.Input.Split],
        range_config: range_config_pb2.RangeConfig | None = None,
        input_base_uri: str | None = None,
    ) -> input_processor.InputProcessor:
        if not input_base_uri:
            raise ValueError("ElwcExampleGen needs input_base (the data root)")
        return ElwcInputProcessor(input_base_uri, splits, range_config)

    def resolve_exec_properties(self, exec_properties, pipeline_info, component_info):
        """TFX's resolution, plus the events files of the same span in the input fingerprint (examples.events),
        so that new or changed events are never a cache hit."""
        exec_properties = super().resolve_exec_properties(exec_properties, pipeline_info, component_info)
        events = EventsOptions.from_json(exec_properties.get(EVENTS_KEY))
        if events is not None and events.separate:
            pattern = events_pattern_for(
                events,
                exec_properties["input_base"],
                exec_properties.get(utils.SPAN_PROPERTY_NAME),
                exec_properties.get(utils.VERSION_PROPERTY_NAME),
            )
            fingerprint = exec_properties.get(utils.FINGERPRINT_PROPERTY_NAME) or ""
            exec_properties[utils.FINGERPRINT_PROPERTY_NAME] = (
                f"{fingerprint}\n{io_utils.generate_fingerprint('events', pattern)}"
            )
        return exec_properties
