"""The op tests (tests/ops/test_<family>.py) share harness.py and tflite_builder.py."""
import pytest

pytest.importorskip("tensorflow")    # the expected outputs come from TFLite's reference kernels
