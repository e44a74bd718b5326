"""Span/version-aware driver: picks the input files before the executor runs.

TFX's FileBasedInputProcessor resolves ``{SPAN}``/``{VERSION}`` patterns: the
latest span and its latest version by default, or exactly the span given by a
static ``RangeConfig``. This driver adds the guarantee a scheduled retraining
needs: a requested span that does not exist is an error naming the span and
the pattern, never a silent fall-back to other data.
"""

from __future__ import annotations

from collections.abc import Iterable

from tfx.components.example_gen import driver, input_processor
from tfx.proto import example_gen_pb2, range_config_pb2


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
