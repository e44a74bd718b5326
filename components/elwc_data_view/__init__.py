"""DataView provider that decodes ELWC records according to the schema."""

from components.elwc_data_view.component import ElwcDataView

__all__ = ["ElwcDataView"]
