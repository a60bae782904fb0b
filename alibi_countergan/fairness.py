"""A fairness probe: how often counterfactuals change protected attributes when they are allowed to.

If a classifier's recourse for many people runs through changing their race or sex, the
classifier leans on those attributes. Table 4 of the paper shows this for one COMPAS defendant;
:func:`fairness_probe` measures it over a whole data set, per attribute and per direction
(``increase`` / ``decrease`` for a numerical attribute, ``from -> to`` for a categorical one).
"""

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import pandas as pd

from alibi_countergan.explainer import CounteRGAN
from alibi_countergan.features import FeatureKey, resolve_features
from alibi_countergan.targets import TargetClass

if TYPE_CHECKING:
    from matplotlib.axes import Axes


@dataclass
class FairnessReport:
    """What :func:`fairness_probe` found.

    Attributes
    ----------
    table
        One row per attribute and direction: ``attribute``, ``direction``, ``changed`` (number of
        counterfactuals that make this change), ``share`` (of all explained instances) and
        ``share_of_successful`` (of the counterfactuals that reach their target).
    n_instances
        Number of explained instances.
    n_successful
        How many of their counterfactuals reach the target.
    """

    table: pd.DataFrame
    n_instances: int
    n_successful: int

    def to_dict(self) -> Dict[str, Any]:
        """The report as JSON-serialisable data."""
        return {"n_instances": self.n_instances, "n_successful": self.n_successful,
                "rows": self.table.to_dict(orient="records")}

    def plot(self, ax: Optional["Axes"] = None, successful_only: bool = False) -> "Axes":
        """A horizontal bar chart of the shares (needs matplotlib).

        Parameters
        ----------
        ax
            Axes to draw on; a new figure when None.
        successful_only
            Plot ``share_of_successful`` instead of ``share``.

        Returns
        -------
        The axes.
        """
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(7, 0.4 * max(3, len(self.table)) + 1))
        column = "share_of_successful" if successful_only else "share"
        labels = [f"{a}: {d}" for a, d in zip(self.table["attribute"], self.table["direction"])]
        ax.barh(labels, self.table[column].to_numpy())
        ax.invert_yaxis()
        ax.set_xlabel("share of successful counterfactuals" if successful_only else "share of counterfactuals")
        ax.set_xlim(0, max(0.05, float(self.table[column].max()) * 1.15) if len(self.table) else 1)
        ax.set_title(f"Protected attributes changed by counterfactuals (n = {self.n_instances})")
        return ax


def _attribute_columns(explainer: CounteRGAN, key: Union[FeatureKey, str]
                       ) -> Tuple[str, List[int], Optional[List[str]]]:
    """(display name, columns, category names or None) for a protected attribute."""
    names = explainer.encoded_config_.feature_names
    groups = explainer.space_.groups
    table = explainer.table_
    if table is not None:
        key = table.encoded_key(key, "protected")  # a column of the table, by name or index
    columns = resolve_features([key], explainer.encoded_config_.n_features, names, "protected", groups)
    if len(columns) > 1 and names is not None:  # a categorical variable named as a whole
        return str(key), columns, [names[j].split("=", 1)[-1] for j in columns]
    column = columns[0]
    for start, stop in groups:
        if start <= column < stop:
            label = names[start].split("=")[0] if names is not None else f"group {start}:{stop}"
            categories = [names[j].split("=", 1)[-1] for j in range(start, stop)] if names is not None else \
                [str(j) for j in range(start, stop)]
            return label, list(range(start, stop)), categories
    return (names[column] if names is not None else f"feature {column}"), [column], None


def fairness_probe(explainer: CounteRGAN, X: np.ndarray, protected: Sequence[Union[FeatureKey, str]],
                   target_class: Optional[TargetClass] = None) -> FairnessReport:
    """Share of counterfactuals that change each protected attribute, per direction.

    Parameters
    ----------
    explainer
        A fitted explainer in which the protected attributes may change (the probe asks what the
        classifier would do with them; an immutable attribute never changes by construction).
    X
        Instances to explain, e.g. a test set, in the form the explainer was fitted on (a DataFrame for an
        explainer fitted on one).
    protected
        Attributes to probe: feature names or indices; a one-hot group by the name before ``=`` in
        its columns' names (``'race'`` for ``'race=Caucasian'`` ...) or by any of its columns; for an
        explainer fitted on a table, its columns by name or index.
    target_class
        Passed to :meth:`CounteRGAN.explain` (None: the explainer's default).

    Returns
    -------
    The report, with a ``plot`` method for a bar chart.

    Raises
    ------
    ValueError
        When a protected attribute is unknown or immutable in the explainer.
    """
    explainer._state()  # raises before fit
    if not protected:
        raise ValueError("protected: give at least one attribute to probe.")
    attributes = [_attribute_columns(explainer, key) for key in protected]
    for label, columns, _ in attributes:
        if np.any(explainer.space_.mutable[columns] == 0):
            raise ValueError(f"protected attribute {label!r} is immutable in this explainer, so its counterfactuals "
                             f"never change it; fit an explainer in which it may change to probe the classifier.")
    explanation = explainer.explain(X, target_class=target_class)
    if explainer.table_ is None:
        x = np.asarray(X, dtype=np.float64).reshape(-1, explainer.n_features)
        cf = np.asarray(explanation.cf["X"], dtype=np.float64).reshape(len(x), -1)
    else:  # a table: compare in its encoding (the one-hot columns of each category)
        x, cf = (explainer.table_.read(t, "X")[0] for t in (X, explanation.cf["X"]))
    success = np.atleast_1d(explanation.success)
    rows = []
    for label, columns, categories in attributes:
        if categories is None:
            j = columns[0]
            changes = {"increase": cf[:, j] > x[:, j], "decrease": cf[:, j] < x[:, j]}
        else:
            before = x[:, columns].argmax(axis=1)
            after = cf[:, columns].argmax(axis=1)
            changes = {f"{categories[a]} -> {categories[b]}": (before == a) & (after == b)
                       for a in range(len(columns)) for b in range(len(columns)) if a != b}
        for direction, changed in changes.items():
            if categories is not None and not changed.any():
                continue
            rows.append({"attribute": label, "direction": direction, "changed": int(changed.sum()),
                         "share": float(changed.mean()),
                         "share_of_successful": float(changed[success].mean()) if success.any() else 0.0})
    table = pd.DataFrame(rows, columns=["attribute", "direction", "changed", "share", "share_of_successful"])
    return FairnessReport(table=table, n_instances=len(x), n_successful=int(success.sum()))
