import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("MPLBACKEND", "Agg")
# Tests keep JAX's persistent compilation cache out of the user's cache folder (tests that
# exercise it give it a folder of their own).
os.environ.setdefault("NN_TUNING_JAX_CACHE", "off")

from pathlib import Path  # noqa: E402

import keras  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from sklearn.datasets import load_iris  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

ADVERTISING = Path(__file__).resolve().parents[1] / "nn_tuning" / "data" / "advertising.csv"


@pytest.fixture(autouse=True)
def _seed():
    keras.utils.set_random_seed(1234)
    yield


@pytest.fixture(scope="session")
def advertising():
    """The Advertising data: standardised TV, Radio, Newspaper -> Sales."""
    df = pd.read_csv(ADVERTISING)
    X = StandardScaler().fit_transform(df[["TV", "Radio", "Newspaper"]].to_numpy())
    return X.astype("float32"), df["Sales"].to_numpy(dtype="float32")


@pytest.fixture(scope="session")
def iris():
    X, y = load_iris(return_X_y=True)
    return StandardScaler().fit_transform(X).astype("float32"), y
