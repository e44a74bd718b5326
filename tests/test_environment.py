"""The installed stack is the one the lock promises (see README: Dependencies)."""

from importlib import metadata


def test_protobuf_uses_the_compiled_upb_backend():
    # Pure-Python protobuf makes ELWC encoding ~40x slower; it creeps in when
    # something pulls protobuf<4 (kfp v1, resolving for Python 3.10).
    from google.protobuf.internal import api_implementation

    assert api_implementation.Type() == "upb"


def test_tensorflow_keras_is_keras_2():
    # TF-Ranking 0.5.5 does not support Keras 3.
    import tensorflow as tf

    assert tf.__version__.startswith("2.15.")
    assert metadata.version("keras").startswith("2.15.")


def test_key_packages_match_the_lock():
    expected = {"tfx": "1.15.1", "tensorflow-ranking": "0.5.5", "tensorflow-transform": "1.15.0"}
    assert {name: metadata.version(name) for name in expected} == expected
