"""Shared by the benchmark scripts: the seed-style builder and the seed data split."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.model_selection import KFold, train_test_split  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

DATA = Path(__file__).resolve().parents[1] / "nn_tuning" / "data" / "advertising.csv"

SEED_GRID = {
    "activation": ["softmax", "relu", "linear"],
    "neurons": [5, 10, 15, 25, 35, 50],
    "optimizer": ["SGD", "Adam", "Adamax"],
}
QUICK_GRID = {
    "activation": ["relu", "linear"],
    "neurons": [10, 50],
    "optimizer": ["SGD", "Adam"],
}
EPOCHS = 80
BATCH_SIZE = 40


def ANN_Model(activation="relu", neurons=10, optimizer="Adam"):  # noqa: N802 - the seed's name
    """The seed recipe's builder: Dense(neurons, activation) -> Dense(1), loss mse."""
    import keras

    model = keras.Sequential([
        keras.Input(shape=(3,)),
        keras.layers.Dense(neurons, activation=activation),
        keras.layers.Dense(1),
    ])
    model.compile(loss="mse", optimizer=optimizer)
    return model


def seed_data(seed: int = 0):
    """The 160 standardised training rows (80/20 split) and a seeded 5-fold KFold."""
    df = pd.read_csv(DATA)
    X = df[["TV", "Radio", "Newspaper"]].to_numpy(dtype="float32")
    y = df["Sales"].to_numpy(dtype="float32")
    X_train, _, y_train, _ = train_test_split(X, y, test_size=0.2, random_state=seed)
    X_train = StandardScaler().fit_transform(X_train).astype("float32")
    cv = KFold(5, shuffle=True, random_state=seed)  # deterministic: same splits every call
    return X_train, y_train, cv


def grid_size(grid: dict) -> int:
    return int(np.prod([len(v) for v in grid.values()]))
