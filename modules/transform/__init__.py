"""Transform stage: ``decoder`` (serialized ELWC -> tensors; the Examples' DataView),
then ``preprocessing`` (Transform's ``preprocessing_fn``: defaults, then transforms)."""
