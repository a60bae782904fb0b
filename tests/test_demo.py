"""The demo's recourse table: what each column holds, alignment, and rows without a counterfactual."""

import numpy as np
import pytest

from alibi_countergan.datasets import load_compas
from alibi_countergan.demo import UNCHANGED, format_change, format_person, main


def test_changes_are_signed_numbers_or_old_to_new_categories():
    assert format_change(6.0, 2.0) == "-4"
    assert format_change(1.5, 2.0) == "+0.50"
    assert format_change(3.0, 3.0) == UNCHANGED
    assert format_change("F", "M") == "F -> M"
    assert format_change("F", "F") == UNCHANGED


def test_a_person_table_is_aligned_and_a_miss_says_so():
    data = load_compas()
    names = data.feature_names
    priors = names.index("priors_count")
    person = np.flatnonzero((data.raw["race"] == "African-American") & (data.raw["priors_count"] > 0))[0]
    row = data.X[person]
    cf = row.copy()
    cf[priors] = 0
    charge = [names.index("c_charge_degree=F"), names.index("c_charge_degree=M")]
    cf[charge] = 1 - row[charge]  # the other charge degree
    old, new = data.describe(row)["c_charge_degree"], data.describe(cf)["c_charge_degree"]
    lines = format_person(data, row, {"white-box": cf, "black-box": row}, np.array([0.8, 0.2]),
                          {"white-box": np.array([0.3, 0.7]), "black-box": np.array([0.8, 0.2])},
                          {"white-box": True, "black-box": False}, favourable=1)
    header, rule, *body = lines
    table = [header] + body[:-1]
    assert header.split() == ["feature", "original", "white-box", "change"]  # the miss gets no column
    assert len(set(map(len, table))) == 1 and set(rule) == {"-"} and len(rule) == len(header)  # aligned
    cells = {line.split()[0]: line.split()[1:] for line in table}
    assert cells["race"] == ["African-American", UNCHANGED]  # a long value, and the columns stay aligned
    assert cells["priors_count"][-1] == f"{-row[priors]:+.0f}"
    assert " ".join(cells["c_charge_degree"]) == f"{old} {old} -> {new}"
    assert cells["P(did"] == ["not", "reoffend)", "0.20", "0.70"]
    assert body[-1].startswith("black-box: no counterfactual found") and "0.20 -> 0.20" in body[-1]
    assert len(body) == len(data.describe(row)) + 2  # one line per feature, the probabilities, the miss


@pytest.mark.slow
def test_the_demo_runs_end_to_end_for_a_single_person(capsys):
    # one person: a single-row explanation reports one bool ``success``, not an array
    assert main(["--steps", "5", "--people", "1", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert out.count("person #") == 1
    assert "white-box:" in out and "black-box:" in out and "turned favourable" in out
