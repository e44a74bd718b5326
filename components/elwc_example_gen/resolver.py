"""Rolling window over ExampleGen outputs: the latest N spans, latest version of each.

Uses TFX 1.15's canned ``rolling_range`` resolver function (``LatestSpan`` op):
per span only the artifact with the highest version (then the newest) is kept, and
``min_spans=1`` lets the first runs train on fewer spans instead of being skipped.
Transform, Tuner and Trainer accept several Examples artifacts: the Trainer's
``fn_args.train_files`` then holds one file pattern per artifact and split.
All artifacts must share one DataView (true while the schema is unchanged).
"""

from __future__ import annotations

from tfx.dsl.input_resolution import canned_resolver_functions


def latest_spans(examples, n: int):
    """Channel of the Examples of the latest ``n`` spans found in MLMD."""
    return canned_resolver_functions.rolling_range(examples, num_spans=n, min_spans=1)
