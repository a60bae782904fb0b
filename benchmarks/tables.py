"""Own tables on data this repository does not hold: the three input forms on the same rows.

For each data set, one scikit-learn Pipeline (OneHotEncoder on the string columns, a gradient-boosted
classifier) is explained black-box by three CounteRGAN explainers with the default parameters and seed:

- ``frame``: the raw DataFrame and the Pipeline object itself;
- ``codes``: alibi's label-encoded array with ``category_map`` (as CounterfactualRLTabular takes it), and a
  function that decodes the codes for the Pipeline;
- ``onehot``: the one-hot array with ``cat_vars`` and the whole-valued columns declared ordinal, as a user
  had to build it before tables were taken as they are, and a function that decodes it for the Pipeline.

It prints, per form: validity, whether every integer column is whole and every category a known one,
immutable violations, L1 of the valid counterfactuals (numeric changes in standard deviations of the fit
data), categories changed per counterfactual, the fit time and the median time of one explanation.

    python benchmarks/tables.py            # needs palmerpenguins and vega_datasets (the bench extra)
"""

import argparse
import time
from typing import Any, Callable, Dict, List, Tuple

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder

from alibi_countergan import CounteRGAN
from alibi_countergan.table import TableSchema


def penguins() -> Tuple[pd.DataFrame, pd.Series, List[str], Any]:
    """Palmer penguins: species from island (categorical), measurements (whole grams and millimetres stored as
    floats), sex (bool) and year; island, sex and year immutable; target: any other species."""
    from palmerpenguins import load_penguins

    raw = load_penguins().dropna().reset_index(drop=True)
    y = raw.pop("species")
    raw["male"] = raw.pop("sex") == "male"
    return raw, y, ["island", "male", "year"], "other"


def cars() -> Tuple[pd.DataFrame, pd.Series, List[str], Any]:
    """Vega's cars: fuel-efficient (at least 25 miles per gallon) from cylinders, displacement, horsepower,
    weight, acceleration, model year and origin; origin and model year immutable; target: efficient."""
    from vega_datasets import data

    raw = data.cars().dropna().drop(columns=["Name"]).reset_index(drop=True)
    raw["Year"] = raw["Year"].dt.year
    y = (raw.pop("Miles_per_Gallon") >= 25).astype(int)
    return raw, y, ["Origin", "Year"], 1


def _pipeline(frame: pd.DataFrame) -> Any:
    strings = [c for c in frame.columns if frame[c].dtype == object]
    encode = ColumnTransformer([("categories", OneHotEncoder(handle_unknown="ignore"), strings)],
                               remainder="passthrough")
    return make_pipeline(encode, HistGradientBoostingClassifier(random_state=0))


Form = Tuple[CounteRGAN, Callable, Callable, Any]
"""An explainer (not fitted), rows -> its form, its form -> rows, and the fit data in its form."""


def _forms(train: pd.DataFrame, model: Any, immutable: List[str]) -> Dict[str, Form]:
    """The three forms of the same table and Pipeline."""
    names = list(train.columns)
    strings = {c: sorted(train[c].unique()) for c in names if train[c].dtype == object}
    dtypes = train.dtypes

    def codes(frame: pd.DataFrame) -> np.ndarray:
        return frame.assign(**{c: pd.Categorical(frame[c], categories=v).codes for c, v in strings.items()}
                            ).to_numpy(dtype=np.float64)

    def from_codes(x: np.ndarray) -> pd.DataFrame:
        frame = pd.DataFrame(x, columns=names)
        for c, v in strings.items():
            frame[c] = np.asarray(v, dtype=object)[frame[c].to_numpy().astype(int)]
        return frame.astype(dtypes)

    frame_explainer = CounteRGAN(model, (1, len(names)), immutable_features=immutable, verbose=False)
    schema = TableSchema.from_frame(train)  # the encoding a one-hot user builds by hand
    whole = [c.name for c in schema.columns if c.kind in ("integer", "bool")]

    def onehot(frame: pd.DataFrame) -> np.ndarray:
        return schema.read(frame)[0]

    def from_onehot(x: np.ndarray) -> pd.DataFrame:
        return schema.write(x)

    codes_explainer = CounteRGAN(lambda x: model.predict_proba(from_codes(x)), (1, len(names)), feature_names=names,
                                 category_map={names.index(c): v for c, v in strings.items()},
                                 immutable_features=immutable, verbose=False)
    onehot_explainer = CounteRGAN(lambda x: model.predict_proba(from_onehot(x)), (1, schema.n_encoded),
                                  feature_names=schema.encoded_names, cat_vars=schema.cat_vars,
                                  ordinal_features=whole, immutable_features=immutable, verbose=False)
    return {"frame": (frame_explainer, lambda f: f, lambda f: f, train),
            "codes": (codes_explainer, codes, from_codes, codes(train)),
            "onehot": (onehot_explainer, onehot, from_onehot, onehot(train))}


def _score(explanation: Any, rows: pd.DataFrame, train: pd.DataFrame, to_frame: Callable, immutable: List[str]
           ) -> Dict[str, float]:
    cf = to_frame(explanation.cf["X"])
    valid = np.atleast_1d(explanation.success)
    numeric = [c for c in rows.columns if rows[c].dtype != object and rows[c].dtype != bool]
    categorical = [c for c in rows.columns if c not in numeric]
    spread = train[numeric].astype(float).std(ddof=0).replace(0, 1)
    l1 = ((cf[numeric].astype(float) - rows[numeric].astype(float)).abs() / spread).sum(axis=1).to_numpy()
    switched = (cf[categorical].to_numpy() != rows[categorical].to_numpy()).sum(axis=1)
    whole = [c for c in numeric if np.all(train[c] == np.round(train[c]))]
    return {"validity": float(valid.mean()),
            "integers whole": float(np.all(cf[whole].to_numpy() == np.round(cf[whole].to_numpy()))),
            "categories known": float(all(set(cf[c]) <= set(train[c]) for c in categorical)),
            "immutable violations": float((cf[immutable].to_numpy() != rows[immutable].to_numpy()).sum()),
            "L1 (valid)": float(l1[valid].mean()), "categories changed": float(switched[valid].mean())}


def run(name: str, loader: Callable, repeats: int) -> pd.DataFrame:
    """The three forms on one data set; a row of figures per form."""
    raw, y, immutable, target = loader()
    order = np.random.default_rng(0).permutation(len(raw))
    cut = int(0.7 * len(raw))
    train, test = raw.iloc[order[:cut]].reset_index(drop=True), raw.iloc[order[cut:]].reset_index(drop=True)
    model = _pipeline(train).fit(train, y.iloc[order[:cut]])
    rows = test if target == "other" else test[model.predict(test) != target].reset_index(drop=True)
    figures = {}
    for form, (explainer, convert, back, fit_data) in _forms(train, model, immutable).items():
        start = time.perf_counter()
        explainer.fit(fit_data)
        fit_s = time.perf_counter() - start
        explanation = explainer.explain(convert(rows), target_class=target)
        scores = _score(explanation, rows, train, back, immutable)
        singles = []
        for i in range(repeats):
            one = convert(rows.iloc[i % len(rows):i % len(rows) + 1])
            start = time.perf_counter()
            explainer.explain(one, target_class=target)
            singles.append(time.perf_counter() - start)
        figures[form] = {**scores, "fit s": fit_s, "one explanation ms": 1e3 * float(np.median(singles))}
    print(f"\n{name}: {len(train)} fit rows, {len(rows)} explained, immutable {immutable}")
    table = pd.DataFrame(figures).T
    print(table.to_markdown(floatfmt=".3g"), flush=True)
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=100, help="single explanations timed per form")
    args = parser.parse_args()
    import torch
    from threadpoolctl import threadpool_limits

    # one thread for the classifier's OpenMP loops too: gradient-boosted trees spread over every core spin for
    # minutes on a shared machine (the explainer itself uses one intra-op thread, n_threads=1)
    threadpool_limits(1)
    torch.set_num_threads(1)
    for name, loader in (("Palmer penguins", penguins), ("Vega cars", cars)):
        run(name, loader, args.repeats)


if __name__ == "__main__":
    main()
