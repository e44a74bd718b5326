"""Custom ExampleGen that writes ExampleListWithContext (ELWC) records.

The readers (``formats``, ``columns``, ``sources``) import neither TFX nor TensorFlow,
so ``ltr init`` can use them; the TFX component is imported only when asked for.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ElwcExampleGen"]


def __getattr__(name: str) -> Any:
    if name == "ElwcExampleGen":
        from components.elwc_example_gen.component import ElwcExampleGen

        return ElwcExampleGen
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
