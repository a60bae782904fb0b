"""Offline recourse over large tables with Ray Data (install ``alibi-countergan[ray]``).

A saved explainer is loaded once per Ray worker (with :func:`alibi_countergan.saving.load`: JSON
and weight files, no pickle) and explains each block of rows in one forward pass, through
``Dataset.map_batches`` with a pool of actors::

    import ray
    from alibi_countergan.ray_data import explain_dataset

    def load_classifier():                      # runs once in each worker
        import joblib
        return joblib.load("/models/classifier.joblib").predict_proba

    table = ray.data.read_parquet("declined-applicants/")
    recourse = explain_dataset(table, "/models/explainer", load_classifier, feature_columns=columns,
                               concurrency=4, target_class=1)
    recourse.write_parquet("recourse/")

The module does not import Ray itself (it calls the methods of the ``Dataset`` it is given), and
:mod:`alibi_countergan` never imports it. Tested by ``tox -e ray``; see docs/serving.md for the
figures.
"""

from typing import Any, Callable, Dict, Sequence

import numpy as np

from alibi_countergan import saving

PredictorFactory = Callable[[], Any]
"""A function without arguments that returns the predictor (called once in each worker)."""


class ExplainBatches:
    """The per-worker callable of :func:`explain_dataset`: loads the explainer once, then explains batches.

    Parameters
    ----------
    path
        The directory written by ``explainer.save(path)``, readable from every worker.
    predictor_factory
        Returns the predictor in the worker (a model for a white-box explainer, any function
        returning probabilities for a black-box one). It must be picklable: a module-level
        function.
    feature_columns
        The table's columns holding the features, in the explainer's order.
    explain_parameters
        Passed to :meth:`CounteRGAN.explain` (``target_class``, ``immutable_features``).
    """

    def __init__(self, path: str, predictor_factory: PredictorFactory, feature_columns: Sequence[str],
                 explain_parameters: Dict[str, Any]) -> None:
        self.explainer = saving.load(path, predictor_factory())
        self.columns = list(feature_columns)
        if self.explainer.feature_shape != (len(self.columns),):
            raise ValueError(f"feature_columns names {len(self.columns)} columns; the explainer takes instances of "
                             f"shape {self.explainer.feature_shape}.")
        self.explain_parameters = dict(explain_parameters)

    def __call__(self, batch: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        """The batch's columns, plus ``cf_<column>`` for each feature, ``cf_class``, ``orig_class``,
        ``target``, ``success`` and ``cf_proba_<k>`` for each class."""
        missing = [c for c in self.columns if c not in batch]
        if missing:
            raise ValueError(f"The table lacks the feature columns {missing}.")
        X = np.stack([np.asarray(batch[c], dtype=np.float32) for c in self.columns], axis=1)
        explanation = self.explainer.explain(X, **self.explain_parameters)
        out = dict(batch)
        cf = np.asarray(explanation.cf["X"]).reshape(len(X), -1)
        for j, column in enumerate(self.columns):
            out[f"cf_{column}"] = cf[:, j]
        out["orig_class"] = np.atleast_1d(explanation.data["orig_class"])
        out["cf_class"] = np.atleast_1d(explanation.cf["class"])
        out["target"] = np.atleast_1d(explanation.data["target"])
        out["success"] = np.atleast_1d(explanation.data["success"])
        proba = np.asarray(explanation.cf["proba"]).reshape(len(X), -1)
        for k in range(proba.shape[1]):
            out[f"cf_proba_{k}"] = proba[:, k]
        return out


def explain_dataset(dataset: Any, path: str, predictor_factory: PredictorFactory, feature_columns: Sequence[str],
                    *, concurrency: int = 2, batch_size: int = 4096, num_cpus: float = 1,
                    **explain_parameters: Any) -> Any:
    """Counterfactuals for every row of a Ray ``Dataset``, by a pool of workers each holding the explainer once.

    Parameters
    ----------
    dataset
        A ``ray.data.Dataset`` with one column per feature (other columns are passed through).
    path
        The saved explainer's directory, readable from every worker.
    predictor_factory
        Returns the predictor inside a worker; see :class:`ExplainBatches`.
    feature_columns
        The feature columns, in the explainer's order.
    concurrency
        Number of workers (Ray actors), each loading the explainer once.
    batch_size
        Rows per ``explain`` call.
    num_cpus
        CPUs reserved per worker.
    explain_parameters
        Passed to :meth:`CounteRGAN.explain`.

    Returns
    -------
    dataset
        A lazy ``ray.data.Dataset`` with the input columns and the counterfactual columns of
        :meth:`ExplainBatches.__call__`.
    """
    return dataset.map_batches(ExplainBatches, fn_constructor_args=(path, predictor_factory, list(feature_columns),
                                                                     explain_parameters),
                               batch_size=batch_size, batch_format="numpy", concurrency=concurrency,
                               num_cpus=num_cpus)
