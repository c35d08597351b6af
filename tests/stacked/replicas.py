"""Replicas of the project's MLP for the stacked engine's tests: built, seeded and read."""

from __future__ import annotations

import keras

from model_builders import mlp_regressor
from nn_tuning.stacked import Replica, read_structure
from nn_tuning.stacked.read_model import weighted_layers


def mlp_replica(seed, rows, optimizer, hidden, activation, lr, dropout=0.0):
    """One replica of ``mlp_regressor`` (3 inputs), its initial weights drawn with ``seed``."""
    keras.utils.set_random_seed(seed)
    model = mlp_regressor(input_dim=3, hidden_layers=hidden, activation=activation,
                          optimizer=optimizer, learning_rate=lr, dropout=dropout)
    weights = [(d.kernel.numpy(), d.bias.numpy()) for d in weighted_layers(model)]
    return Replica(read_structure(model), weights, rows, seed)
