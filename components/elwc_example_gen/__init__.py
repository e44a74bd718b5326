"""Custom ExampleGen that writes ExampleListWithContext (ELWC) records."""

from components.elwc_example_gen.component import ElwcExampleGen

__all__ = ["ElwcExampleGen"]
