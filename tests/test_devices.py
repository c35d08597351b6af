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
        ({"device": "auto", "gpus": [-1]}, "gpus must be a list of GPU indices"),
    ],
)
def test_bad_device_choices(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        configure_devices(**kwargs)


def test_asking_for_a_gpu_that_is_not_there_is_refused():
    import tensorflow as tf

    n_gpus = len(tf.config.list_physical_devices("GPU"))
    if n_gpus == 0:
        with pytest.raises(ConfigError, match="device 'gpu' was asked for but TensorFlow sees no GPU"):
            configure_devices("gpu")
    else:  # the same refusal on a machine with GPUs: one more than it has
        with pytest.raises(ConfigError, match=rf"gpus \[{n_gpus}\] do not exist"):
            configure_devices("gpu", [n_gpus])
