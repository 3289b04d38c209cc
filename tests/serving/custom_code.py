"""Custom code used by test models: a skops model that names it must have it trusted, and the server must
be able to import it (the tests put this folder on the server's PYTHONPATH as module ``serving_custom``)."""

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin


def clip_features(X):
    """Identity, but refuses values above 1e6 (so a valid-looking request can make the model raise)."""
    X = np.asarray(X, dtype=float)
    if (np.abs(X) > 1e6).any():
        raise ValueError("feature values above 1e6 are out of range for this model")
    return X


class MemoryHog(ClassifierMixin, BaseEstimator):
    """Predicts 0; a row whose first value is N >= 1 makes the model keep N MiB allocated."""

    def fit(self, X, y):
        self.n_features_in_ = np.asarray(X).shape[1]
        self.classes_ = np.array([0])
        return self

    def predict(self, X):
        X = np.asarray(X)
        mib = int(X[:, 0].max())
        if mib >= 1:
            self.ballast_ = np.ones(mib << 17)  # 2**17 float64 = 1 MiB, every page touched
        return np.zeros(len(X), dtype=int)
