"""Recourse as a person reads it: plots of the changes of a table explanation.

An explainer fitted on a user's table (a DataFrame, or alibi's label-encoded array with ``category_map``)
returns, with every explanation, ``changes``: one row per column that a counterfactual changes
(``instance``, ``feature``, ``from``, ``to``), and ``recourse``: the same in words per instance
(see :func:`alibi_countergan.table.table_explanation`). :func:`plot_changes` draws them: one person's
changes, or for a batch how often the recourse asks to change each feature, by group when a column of the
originals is given (beside :func:`alibi_countergan.fairness.fairness_probe`'s chart). It needs matplotlib
(the ``plot`` extra).
"""

from typing import Any, Optional, Sequence

import numpy as np
import pandas as pd
from alibi.api.interfaces import Explanation


def changes_of(explanation: Explanation) -> pd.DataFrame:
    """The ``changes`` table of an explanation of a table explainer.

    Raises
    ------
    ValueError
        For an explanation of arrays without a table (fit on a DataFrame, or with ``category_map``).
    """
    changes = explanation.data.get("changes")
    if not isinstance(changes, pd.DataFrame):
        raise ValueError("This explanation has no `changes` table: only an explainer fitted on a table (a DataFrame, "
                         "or alibi's label-encoded array with category_map) describes its changes by column.")
    return changes


def change_rates(explanation: Explanation, by: Optional[Sequence[Any]] = None) -> pd.DataFrame:
    """How often the counterfactuals change each feature: the share of instances, per group.

    Parameters
    ----------
    explanation
        An explanation of a batch by a table explainer.
    by
        One group label per instance (for example ``X["race"]``); None puts every instance in one group.

    Returns
    -------
    rates
        Features as rows (most often changed first), groups as columns (``'all'`` without ``by``).
    """
    changes = changes_of(explanation)
    instances = list(explanation.cf["X"].index) if isinstance(explanation.cf["X"], pd.DataFrame) else list(
        range(len(explanation.cf["X"])))
    groups = pd.Series(["all"] * len(instances) if by is None else list(by), index=instances)
    if len(groups) != len(instances):
        raise ValueError(f"by has {len(groups)} labels for {len(instances)} instances.")
    sizes = groups.value_counts()
    labelled = changes.assign(group=groups.loc[changes["instance"]].to_numpy())
    counts = labelled.groupby(["feature", "group"]).size().unstack("group", fill_value=0)
    rates = counts.reindex(columns=sizes.index, fill_value=0) / sizes
    return rates.loc[rates.max(axis=1).sort_values(ascending=False).index]


def plot_changes(explanation: Explanation, instance: Optional[int] = None, by: Optional[Sequence[Any]] = None,
                 ax: Any = None) -> Any:
    """Draw the changes of one instance, or how often a batch's recourse changes each feature.

    Parameters
    ----------
    explanation
        An explanation by a table explainer.
    instance
        The position (0, 1, ...) of one instance to draw: a bar per changed feature, labelled
        ``from -> to`` (the bar's length is the numeric change; a category switch is drawn at 1). None draws
        the batch: the share of instances whose counterfactual changes each feature.
    by
        For a batch, one group label per instance: one bar per group and feature.
    ax
        A matplotlib ``Axes`` to draw on; None makes a figure.

    Returns
    -------
    ax
        The ``Axes``.
    """
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(7, 3.5))
    if instance is not None:
        return _plot_instance(explanation, instance, ax)
    rates = change_rates(explanation, by)
    rates.iloc[::-1].plot.barh(ax=ax, legend=by is not None, width=0.8)
    ax.set_xlabel("share of instances whose counterfactual changes the feature")
    ax.set_ylabel("")
    ax.set_xlim(0, 1)
    ax.set_title("What the recourse asks to change" + ("" if by is None else " (by group)"))
    return ax


def _plot_instance(explanation: Explanation, instance: int, ax: Any) -> Any:
    cf = explanation.cf["X"]
    labels = list(cf.index) if isinstance(cf, pd.DataFrame) else list(range(len(cf)))
    if not 0 <= instance < len(labels):
        raise ValueError(f"instance={instance} is out of range for {len(labels)} instances.")
    mine = changes_of(explanation)
    mine = mine[mine["instance"] == labels[instance]]
    sizes = [float(b) - float(a) if _is_number(a) and _is_number(b) else 1.0 for a, b in zip(mine["from"], mine["to"])]
    y = np.arange(len(mine))
    ax.barh(y, sizes, color=["tab:blue" if s >= 0 else "tab:orange" for s in sizes])
    ax.set_yticks(y, [f"{f}: {a} -> {b}" for f, a, b in zip(mine["feature"], mine["from"], mine["to"])])
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_xlabel("change (a category switch is drawn at 1)")
    ax.set_title(f"Recourse for instance {labels[instance]}" + ("" if len(mine) else ": no change"))
    return ax


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))
