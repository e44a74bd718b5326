"""Compatibility alias: the decoder lives in ``modules.transform.decoder``.

Kept only because ``components/elwc_example_gen/data_view.py`` (another branch's
area) imports it from here; delete once that import is updated.
"""

from modules.transform.decoder import ElwcDecoder, decode_elwc  # noqa: F401
