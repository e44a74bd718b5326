"""Tuner and Trainer stage, in the order ``run_fn`` reads them:

``config`` (the ``training``/``tuner`` config sections; no TensorFlow import, so
MLMD readers can use it) -> ``hparams`` (search space) -> ``inputs`` (ELWC files
-> decoded -> Transform graph -> dense batches) -> ``model`` (TF-Ranking Keras
model) -> ``trainer`` (``run_fn``: fit, validate, export through
``modules.serving``) / ``tuner`` (``tuner_fn``). ``distribution``,
``local_cluster`` and ``worker`` run multi-process strategies.
"""
