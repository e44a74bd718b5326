"""TFX user code, by stage, in the order the data flows:

- ``features``: the schema's features (names, roles, types, defaults, transforms);
  every other module derives what it needs from it.
- ``transform``: the ELWC decoder (ExampleGen's DataView) and ``preprocessing_fn``.
- ``training``: ``tuner_fn`` and ``run_fn``: datasets, model, training, export.
- ``serving``: the exported model's signatures.
"""
