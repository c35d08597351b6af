import pytest

from nn_tuning import ConfigError
from nn_tuning.devices import configure_devices, describe_devices


def test_cpu_device_is_recorded_with_every_trial(advertising):
    from model_builders import mlp_regressor
    from nn_tuning import SearchSpace, tune

    X, y = advertising
    result = tune(mlp_regressor, SearchSpace(neurons=[4]), X, y, strategy="grid", cv=2,
                  epochs=2, device="cpu", refit=False)
    assert list(result.trials["device"]) == ["cpu"]


def test_describe_devices_lists_the_cpu():
    assert any(name.startswith("CPU") for name in describe_devices())


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"device": "tpu"}, "device must be one of auto, cpu, gpu, got 'tpu'"),
        ({"device": "gpu"}, "device 'gpu' was asked for but TensorFlow sees no GPU"),
        ({"device": "auto", "gpus": [-1]}, "gpus must be a list of GPU indices"),
    ],
)
def test_bad_device_choices(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        configure_devices(**kwargs)
