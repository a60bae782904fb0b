"""Users' own tables: a DataFrame and a scikit-learn Pipeline, or alibi's label-encoded arrays, in and out.

The data are real tables in their raw form: the COMPAS CSV shipped with the package (integer counts and
string categories) and the Palmer penguins (package ``palmerpenguins``, not in this repository: measurements
whose values are whole but stored as floats, a year, the island as a pandas categorical and the sex as a
bool). Every explainer is trained black-box on a scikit-learn Pipeline that one-hot encodes the strings
itself, once per backend.
"""

import json
from typing import Any, Dict, Tuple

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from alibi_countergan import CounteRGAN
from alibi_countergan.datasets import compas_csv
from alibi_countergan.table import TableSchema, changes_frame, recourse_lines

COMPAS_CATEGORIES = ["sex", "race", "c_charge_degree"]
COMPAS_INTEGERS = ["age", "priors_count", "days_b_screening_arrest", "juv_fel_count", "juv_misd_count",
                   "juv_other_count"]


def _pipeline(categorical):
    encode = ColumnTransformer([("categories", OneHotEncoder(handle_unknown="ignore"), categorical)],
                               remainder=StandardScaler())
    return make_pipeline(encode, LogisticRegression(max_iter=2000))


class CountingPipeline:
    """A fitted Pipeline's predict_proba, counting the calls and keeping the types it was called with."""

    def __init__(self, pipeline):
        self.pipeline, self.calls, self.inputs = pipeline, 0, set()

    def predict_proba(self, X):
        self.calls += 1
        self.inputs.add(type(X).__name__)
        return self.pipeline.predict_proba(X)


@pytest.fixture(scope="module")
def compas_table() -> Dict[str, Any]:
    raw = pd.read_csv(compas_csv())
    y = (raw.pop("two_year_recid") == 0).astype(int)  # 1: did not reoffend
    order = np.random.default_rng(0).permutation(len(raw))
    train, test = raw.iloc[order[:5000]], raw.iloc[order[5000:]]
    model = _pipeline(COMPAS_CATEGORIES).fit(train, y.iloc[order[:5000]])
    declined = test[model.predict(test) == 0].iloc[:60]
    return {"train": train, "declined": declined, "model": model}


@pytest.fixture(scope="module")
def compas_frame_explainer(backend, compas_table) -> Tuple[CounteRGAN, CountingPipeline]:
    predictor = CountingPipeline(compas_table["model"])
    explainer = CounteRGAN(predictor, (1, 9), backend=backend.name, immutable_features=["age", "sex", "race"],
                           train_steps=400, verbose=False, seed=0)
    return explainer.fit(compas_table["train"]), predictor


def test_dataframe_and_pipeline_give_recourse_in_the_same_form(compas_table, compas_frame_explainer):
    explainer, predictor = compas_frame_explainer
    declined = compas_table["declined"]
    before = declined.copy()
    explanation = explainer.explain(declined, target_class=1)
    pd.testing.assert_frame_equal(declined, before)  # the input is not modified
    cf = explanation.cf["X"]
    assert isinstance(cf, pd.DataFrame)
    assert list(cf.columns) == list(declined.columns) and cf.index.equals(declined.index)
    assert cf.dtypes.to_dict() == declined.dtypes.to_dict()
    assert predictor.inputs == {"DataFrame"}  # the Pipeline was only ever called on DataFrames
    assert np.mean(explanation.success) >= 0.9
    # the predictor's own verdict on the returned rows agrees with success
    assert np.array_equal(compas_table["model"].predict(cf) == 1, explanation.success)
    train = compas_table["train"]
    for column in COMPAS_INTEGERS:  # whole, within the observed range
        assert cf[column].dtype == np.int64
        assert cf[column].between(train[column].min(), train[column].max()).all()
    for column in COMPAS_CATEGORIES:
        assert set(cf[column]) <= set(train[column])
    for column in ["age", "sex", "race"]:
        assert cf[column].equals(declined[column])


def test_changes_table_and_recourse_text_describe_the_counterfactuals(compas_table, compas_frame_explainer):
    explainer, _ = compas_frame_explainer
    declined = compas_table["declined"].iloc[:20]
    explanation = explainer.explain(declined, target_class=1)
    cf, changes = explanation.cf["X"], explanation.changes
    assert list(changes.columns) == ["instance", "feature", "from", "to"]
    expected = {(i, c) for i in declined.index for c in declined.columns if declined.at[i, c] != cf.at[i, c]}
    assert set(zip(changes["instance"], changes["feature"])) == expected
    for row in changes.itertuples(index=False):
        assert declined.at[row.instance, row.feature] == row[2] and cf.at[row.instance, row.feature] == row[3]
    assert len(explanation.recourse) == len(declined)
    first = changes[changes["instance"] == declined.index[0]]
    words = "; ".join(f"{f}: {a} -> {b}" for f, a, b in zip(first["feature"], first["from"], first["to"]))
    assert explanation.recourse[0] == (words or "no change")
    data = json.loads(explanation.to_json())["data"]
    assert data["cf"]["X"]["columns"] == list(declined.columns)
    assert data["recourse"] == explanation.recourse


def test_changes_keep_large_counts_whole_beside_a_changed_float(compas_table):
    # a count of 10,000 or more changed together with a float: pandas would make the from/to columns float and
    # .4g would write the count as 1.235e+05 (rounded); the changes keep each value's type, the words every digit
    train = compas_table["train"].assign(income=lambda f: 20_000 + 1_001 * f["priors_count"],
                                         rate=lambda f: f["age"] / 100.0, balance=lambda f: 55_500.25 + f["age"])
    schema = TableSchema.from_frame(train)
    x = train.iloc[:3]
    cf = x.assign(income=x["income"] + 103_456, rate=x["rate"] + 0.05)
    cf.loc[cf.index[0], "balance"] = 61_234.75
    changes = changes_frame(schema, x, cf)
    assert len(changes) == 7  # income and rate in every row, balance in the first
    first = changes[changes["instance"] == x.index[0]]
    assert first["feature"].tolist() == ["income", "rate", "balance"]  # the table's column order
    income = changes[changes["feature"] == "income"]
    assert all(type(v) is int for v in income["from"].tolist() + income["to"].tolist())
    assert income["to"].tolist() == cf["income"].tolist()
    words = recourse_lines(changes, list(x.index))
    a, b = x.iloc[0], cf.iloc[0]
    assert words[0] == (f"income: {a['income']} -> {b['income']}; rate: {a['rate']:.4g} -> {b['rate']:.4g}; "
                        f"balance: {a['balance']:.0f} -> 61235")
    assert all("e+" not in line for line in words)
    assert len(words) == 3 and all(line.startswith("income: ") for line in words)


def test_columns_are_matched_by_name(compas_table, compas_frame_explainer):
    explainer, _ = compas_frame_explainer
    declined = compas_table["declined"].iloc[:10]
    shuffled = declined[list(reversed(declined.columns))]
    a = explainer.explain(declined, target_class=1)
    b = explainer.explain(shuffled, target_class=1)
    assert list(b.cf["X"].columns) == list(shuffled.columns)
    pd.testing.assert_frame_equal(a.cf["X"], b.cf["X"][list(declined.columns)])
    one = explainer.explain(declined.iloc[0], target_class=1)  # a Series is one row
    assert isinstance(one.success, bool) and len(one.cf["X"]) == 1


def test_explain_time_freeze_by_column_name_and_index(compas_table, compas_frame_explainer):
    explainer, _ = compas_frame_explainer
    declined = compas_table["declined"].iloc[:20]
    by_name = explainer.explain(declined, target_class=1, immutable_features=["priors_count", "c_charge_degree"])
    by_index = explainer.explain(declined, target_class=1, immutable_features=[1, 8])
    for explanation in (by_name, by_index):
        assert explanation.cf["X"]["priors_count"].equals(declined["priors_count"])
        assert explanation.cf["X"]["c_charge_degree"].equals(declined["c_charge_degree"])
    pd.testing.assert_frame_equal(by_name.cf["X"], by_index.cf["X"])


@pytest.mark.parametrize("change, message", [
    (lambda f: f.drop(columns=["race"]), r"lacks the column\(s\) \['race'\]"),
    (lambda f: f.assign(zip_code=1), r"unknown column\(s\) \['zip_code'\]"),
    (lambda f: f.assign(race="Martian"), r"'race' holds the unknown category 'Martian'"),
    (lambda f: f.assign(priors_count=np.nan), r"'priors_count' has a missing value"),
    (lambda f: f.assign(priors_count="three"), r"'priors_count' must hold numbers .*'three'"),
    (lambda f: f.to_numpy(), r"must be a pandas DataFrame"),
])
def test_bad_tables_are_refused_before_any_work(compas_table, compas_frame_explainer, change, message):
    explainer, predictor = compas_frame_explainer
    bad = change(compas_table["declined"].iloc[:3].copy())
    snapshot = bad.copy()
    calls = predictor.calls
    with pytest.raises(ValueError, match=message):
        explainer.explain(bad, target_class=1)
    assert predictor.calls == calls
    if isinstance(bad, pd.DataFrame):
        pd.testing.assert_frame_equal(bad, snapshot)


def test_a_saved_table_explainer_explains_the_same(tmp_path, compas_table, compas_frame_explainer):
    explainer, predictor = compas_frame_explainer
    declined = compas_table["declined"].iloc[:10]
    explainer.save(tmp_path / "table")
    loaded = CounteRGAN.load(tmp_path / "table", predictor)
    pd.testing.assert_frame_equal(loaded.explain(declined, target_class=1).cf["X"],
                                  explainer.explain(declined, target_class=1).cf["X"])


# ----------------------------------------------------------------------------------------------
# alibi's label-encoded form, and the one-hot form on the same rows
# ----------------------------------------------------------------------------------------------


def _codes(frame: pd.DataFrame, categories: Dict[str, list]) -> np.ndarray:
    out = frame.copy()
    for column, names in categories.items():
        out[column] = pd.Categorical(frame[column], categories=names).codes
    return out.to_numpy(dtype=np.float64)


def test_label_encoded_array_with_category_map(backend, compas_table):
    train, declined, model = compas_table["train"], compas_table["declined"], compas_table["model"]
    names = list(train.columns)
    categories = {c: sorted(train[c].unique()) for c in COMPAS_CATEGORIES}
    category_map = {names.index(c): v for c, v in categories.items()}

    def predict(codes: np.ndarray) -> np.ndarray:  # the model on alibi's label-encoded rows
        frame = pd.DataFrame(codes, columns=names)
        for column, values in categories.items():
            frame[column] = np.asarray(values, dtype=object)[frame[column].to_numpy().astype(int)]
        return model.predict_proba(frame.astype({c: np.int64 for c in COMPAS_INTEGERS}))

    explainer = CounteRGAN(predict, (1, 9), backend=backend.name, category_map=category_map, feature_names=names,
                           immutable_features=["age", 6, "race"], train_steps=400, verbose=False, seed=0)
    explainer.fit(_codes(train, categories))
    x = _codes(declined, categories)
    explanation = explainer.explain(x, target_class=1)
    cf = explanation.cf["X"]
    assert isinstance(cf, np.ndarray) and cf.shape == x.shape and cf.dtype == x.dtype
    assert np.mean(explanation.success) >= 0.9
    assert np.array_equal(cf, np.round(cf))  # codes and counts stay whole
    for j, values in category_map.items():
        assert set(cf[:, j].astype(int)) <= set(range(len(values)))
    assert np.array_equal(cf[:, [0, 6, 7]], x[:, [0, 6, 7]])
    assert explanation.changes["feature"].isin(names).all()
    switched = explanation.changes[explanation.changes["feature"] == "c_charge_degree"]
    assert set(switched["to"]) <= {"F", "M"}  # categories shown by their names


def test_the_one_hot_form_still_needs_feature_names_to_name_features(pima_model, pima):
    _, X_train, _, _, _ = pima
    explainer = CounteRGAN(pima_model, (1, 8), immutable_features=["Glucose"], train_steps=1, verbose=False)
    with pytest.raises(ValueError, match="no `feature_names`"):
        explainer.fit(X_train)


# ----------------------------------------------------------------------------------------------
# penguins: whole values stored as floats, a pandas categorical, a bool, three classes
# ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def penguins() -> Dict[str, Any]:
    palmerpenguins = pytest.importorskip("palmerpenguins")
    raw = palmerpenguins.load_penguins().dropna().reset_index(drop=True)
    y = raw.pop("species")
    raw["island"] = raw["island"].astype("category")
    raw["male"] = raw.pop("sex") == "male"
    model = _pipeline(["island"]).fit(raw, y)
    return {"X": raw, "y": y, "model": model}


def test_penguins_whole_values_categorical_and_bool_columns(backend, penguins):
    X, model = penguins["X"], penguins["model"]
    explainer = CounteRGAN(model, (1, 7), backend=backend.name, immutable_features=["year", "island"],
                           continuous_features=["bill_length_mm"], train_steps=400, verbose=False, seed=0)
    explainer.fit(X)
    kinds = {c.name: c.kind for c in explainer.table_.columns}
    assert kinds == {"island": "category", "bill_length_mm": "float", "bill_depth_mm": "float",
                     "flipper_length_mm": "integer", "body_mass_g": "integer", "year": "integer", "male": "bool"}
    rows = X.iloc[::7]
    explanation = explainer.explain(rows)  # 'other': the best of the two other species
    cf = explanation.cf["X"]
    assert cf.dtypes.to_dict() == rows.dtypes.to_dict()
    assert list(cf["island"].cat.categories) == list(X["island"].cat.categories)
    assert np.array_equal(cf["flipper_length_mm"], np.round(cf["flipper_length_mm"]))
    assert np.array_equal(cf["body_mass_g"], np.round(cf["body_mass_g"]))
    assert cf["year"].equals(rows["year"]) and cf["island"].equals(rows["island"])
    assert np.mean(explanation.success) >= 0.9
    assert np.array_equal(model.predict(cf)[explanation.success],
                          np.asarray(model.classes_)[explanation.target][explanation.success])


def test_an_all_numeric_dataframe_trains_white_box(backend, pima, pima_model):
    data, X_train, X_test, _, _ = pima
    frame = pd.DataFrame(X_train, columns=data.feature_names).astype({"Pregnancies": int, "Age": int})
    explainer = CounteRGAN(pima_model, (1, 8), backend=backend.name, immutable_features=["Pregnancies", "Age"],
                           train_steps=300, verbose=False, seed=0).fit(frame)
    assert explainer.white_box
    rows = pd.DataFrame(X_test[:30], columns=data.feature_names).astype({"Pregnancies": int, "Age": int})
    cf = explainer.explain(rows).cf["X"]
    assert cf.dtypes.to_dict() == rows.dtypes.to_dict()
    whole = [c.name for c in explainer.table_.columns if c.kind == "integer"]
    assert {"Pregnancies", "Age", "Glucose", "Insulin"} <= set(whole)  # whole values in the data
    assert np.array_equal(cf[whole], np.round(cf[whole]))


def test_a_framework_model_cannot_train_through_categorical_columns(backend, compas_table, pima_model):
    explainer = CounteRGAN(pima_model, (1, 9), backend=backend.name, method="white-box", train_steps=1,
                           verbose=False)
    with pytest.raises(ValueError, match="categorical columns have none"):
        explainer.fit(compas_table["train"])


def test_bad_table_parameters_are_named(compas_table):
    model = compas_table["model"]
    train = compas_table["train"]
    with pytest.raises(ValueError, match=r"shape=\(1, 8\) does not fit the table's 9 columns"):
        CounteRGAN(model, (1, 8), train_steps=1, verbose=False).fit(train)
    with pytest.raises(ValueError, match="immutable_features: unknown column 'colour'"):
        CounteRGAN(model, (1, 9), immutable_features=["colour"], train_steps=1, verbose=False).fit(train)
    with pytest.raises(ValueError, match="continuous_features: column 'race'"):
        CounteRGAN(model, (1, 9), continuous_features=["race"], train_steps=1, verbose=False).fit(train)
    with pytest.raises(ValueError, match="has a missing value"):
        CounteRGAN(model, (1, 9), train_steps=1, verbose=False).fit(train.assign(age=np.nan))
    with pytest.raises(ValueError, match="predict_proba"):
        CounteRGAN(object(), (1, 9))


def test_change_rates_and_plots_of_a_batch(compas_table, compas_frame_explainer):
    import matplotlib

    matplotlib.use("Agg")
    from alibi_countergan.recourse import change_rates, plot_changes

    explainer, _ = compas_frame_explainer
    declined = compas_table["declined"]
    explanation = explainer.explain(declined, target_class=1)
    rates = change_rates(explanation, by=declined["race"])
    changes = explanation.changes
    for race in rates.columns:
        members = declined.index[declined["race"] == race]
        changed = changes[changes["instance"].isin(members) & (changes["feature"] == "priors_count")]
        assert rates.at["priors_count", race] == pytest.approx(changed["instance"].nunique() / len(members))
    ax = plot_changes(explanation, by=declined["race"])
    assert {t.get_text() for t in ax.get_yticklabels()} == set(rates.index)
    one = plot_changes(explanation, instance=0)
    assert len(one.get_yticklabels()) == int((changes["instance"] == declined.index[0]).sum())
    with pytest.raises(ValueError, match="no `changes` table"):
        change_rates(explainer.explain(declined, target_class=1).__class__(meta={}, data={"cf": {}}))


def test_fairness_probe_reads_a_table(backend, compas_table):
    from alibi_countergan.fairness import fairness_probe

    explainer = CounteRGAN(compas_table["model"], (1, 9), backend=backend.name, immutable_features=["age"],
                           train_steps=200, verbose=False, seed=0).fit(compas_table["train"])
    declined = compas_table["declined"]
    report = fairness_probe(explainer, declined, protected=["race", 6], target_class=1)
    explanation = explainer.explain(declined, target_class=1)
    cf = explanation.cf["X"]
    for attribute in ("race", "sex"):
        switched = (cf[attribute] != declined[attribute]).mean()
        rows = report.table[report.table["attribute"] == attribute]
        assert rows["share"].sum() == pytest.approx(switched)


def test_constraints_by_column_name_and_diverse_counterfactuals(backend, compas_table):
    train, declined = compas_table["train"], compas_table["declined"].iloc[:20]
    explainer = CounteRGAN(compas_table["model"], (1, 9), backend=backend.name, immutable_features=["age", 6, "race"],
                           monotone={"priors_count": "decreasing", 3: "decreasing"},
                           category_cost={"c_charge_degree": 3.0}, train_steps=200, verbose=False, seed=0).fit(train)
    assert explainer.space_.category_costs == (1.0, 1.0, 3.0)  # sex, race, c_charge_degree
    explanation = explainer.explain(declined, target_class=1, n_counterfactuals=3)
    cf = explanation.cf["X"]
    assert (cf["priors_count"] <= declined["priors_count"]).all()
    assert (cf["juv_fel_count"] <= declined["juv_fel_count"]).all()
    assert len(explanation.counterfactuals) == len(declined)
    for options, (_, row) in zip(explanation.counterfactuals, declined.iterrows()):
        X = options["X"]
        assert isinstance(X, pd.DataFrame) and list(X.columns) == list(declined.columns)
        assert X.dtypes.to_dict() == declined.dtypes.to_dict()
        assert (X["priors_count"] <= row["priors_count"]).all() and (X["sex"] == row["sex"]).all()


def test_whole_columns_refuse_fractions_and_residuals_stay_whole(compas_table, compas_frame_explainer):
    explainer, _ = compas_frame_explainer
    rows = compas_table["declined"].iloc[:3]
    with pytest.raises(ValueError, match=r"'priors_count' holds 2.5 \(row 0\).*whole numbers"):
        explainer.explain(rows.assign(priors_count=[2.5, 1, 0]), target_class=1)
    residual = explainer.explain(rows, target_class=1).residual
    assert list(residual.columns) == COMPAS_INTEGERS and (residual.dtypes == np.int64).all()


@pytest.mark.parametrize("categories, values", [
    ([1, 2, 3], [1.0, np.int64(2), 3, 2]), (["a", "b"], [np.str_("a"), "b", "a"]), ([0.5, 1.5], [0.5, np.float32(1.5)]),
])
def test_a_categorical_column_is_coded_as_pandas_codes_it(categories, values):
    """Reading looks categories up in a cached Index: the codes (and the refusals) are pd.Categorical's."""
    fit = pd.DataFrame({"c": pd.Series(categories, dtype=object), "n": np.arange(len(categories), dtype=float)})
    schema = TableSchema.from_frame(fit, category_map={"c": categories})
    rows = pd.DataFrame({"c": pd.Series(values, dtype=object), "n": np.zeros(len(values))})
    encoded = schema.read(rows)[0]
    expected = pd.Categorical(rows["c"], categories=categories).codes
    np.testing.assert_array_equal(encoded[:, :len(categories)].argmax(axis=1), expected)
    unknown = pd.DataFrame({"c": pd.Series([values[0], "zz"], dtype=object), "n": [0.0, 0.0]})
    with pytest.raises(ValueError, match="column 'c' holds the unknown category 'zz' \\(row 1\\)"):
        schema.read(unknown)
