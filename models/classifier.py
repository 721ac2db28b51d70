"""``Classifier``: the scikit-learn conventions naive Bayes and logistic regression share: validated
inputs, labels mapped to ``classes_``, ``predict`` and ``score`` from a subclass's ``predict_proba``."""
from __future__ import annotations

import torch

from ppgen.errors import DataError

__all__ = ["Classifier"]


class Classifier:
    """scikit-learn conventions shared by the classifiers: validated inputs, labels, ``predict``, ``score``."""

    dtype = torch.float64

    def _features(self, X, allow_missing: bool = False) -> torch.Tensor:
        device = X.device if isinstance(X, torch.Tensor) else None
        x = torch.as_tensor(X, dtype=self.dtype, device=device)
        if x.dim() != 2:
            raise DataError(f"X must be an (n_samples, n_features) array; got shape {tuple(x.shape)}")
        if hasattr(self, "n_features_") and x.shape[1] != self.n_features_:
            raise DataError(f"X has {x.shape[1]} features; the classifier was fit with {self.n_features_}")
        bad = torch.isinf(x) if allow_missing else ~torch.isfinite(x)
        if bool(bad.any()):
            what = "inf" if allow_missing else "NaN/inf (missing features are allowed in predict, not in fit)"
            raise DataError(f"X has {what} values, the first at {tuple(int(i) for i in bad.nonzero()[0])}")
        return x

    def _labels(self, y, n: int) -> torch.Tensor:
        """``y`` as class indices 0..C-1; sets :attr:`classes_` (the sorted distinct labels)."""
        y = torch.as_tensor(y)
        if y.shape != (n,) or (y.is_floating_point() and bool((y != y.round()).any())):
            raise DataError(f"y must hold {n} integer class labels; got shape {tuple(y.shape)}, dtype {y.dtype}")
        self.classes_, index = torch.unique(y.long(), return_inverse=True)
        return index

    def predict(self, X) -> torch.Tensor:
        """The most probable class of each row."""
        return self.classes_.to(self._device)[self.predict_proba(X).argmax(-1)]

    def score(self, X, y) -> float:
        """Mean accuracy."""
        y = torch.as_tensor(y, device=self._device)
        return float((self.predict(X) == y).double().mean())
