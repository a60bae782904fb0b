"""The overhead of the raw-table path on COMPAS: the same Pipeline explained from the raw DataFrame and from the
one-hot array (fit time, one refined explanation, and the reading and writing pieces), one thread.

    python benchmarks/table_overhead.py
"""

import time
from typing import Callable

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from alibi_countergan import CounteRGAN
from alibi_countergan.datasets import compas_csv
from alibi_countergan.table import TableSchema, table_explanation


def median_ms(f: Callable[[int], object], n: int = 200) -> float:
    """Median wall time of ``f(i)`` over ``n`` calls, in milliseconds."""
    times = []
    for i in range(n):
        start = time.perf_counter()
        f(i)
        times.append(time.perf_counter() - start)
    return 1e3 * float(np.median(times))


def main() -> None:
    import torch
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)
    torch.set_num_threads(1)
    raw = pd.read_csv(compas_csv())
    y = (raw.pop("two_year_recid") == 0).astype(int)
    encode = ColumnTransformer([("c", OneHotEncoder(handle_unknown="ignore"), ["sex", "race", "c_charge_degree"])],
                               remainder=StandardScaler())
    model = make_pipeline(encode, LogisticRegression(max_iter=1000)).fit(raw, y)
    schema = TableSchema.from_frame(raw)
    immutable = ["age", "sex", "race"]
    start = time.perf_counter()
    frame = CounteRGAN(model, (1, 9), immutable_features=immutable, verbose=False).fit(raw)
    fit_frame = time.perf_counter() - start
    whole = [c.name for c in schema.columns if c.kind == "integer"]
    start = time.perf_counter()
    onehot = CounteRGAN(lambda x: model.predict_proba(schema.write(x)), (1, schema.n_encoded),
                        feature_names=schema.encoded_names, cat_vars=schema.cat_vars, ordinal_features=whole,
                        immutable_features=immutable, verbose=False).fit(schema.read(raw)[0].astype(np.float32))
    fit_onehot = time.perf_counter() - start
    rows = raw[model.predict(raw) == 0].iloc[:200]
    encoded = schema.read(rows)[0]
    print(f"fit s: frame {fit_frame:.1f}, onehot {fit_onehot:.1f}")
    print(f"one explanation ms: frame {median_ms(lambda i: frame.explain(rows.iloc[i:i + 1], target_class=1)):.2f}, "
          f"onehot {median_ms(lambda i: onehot.explain(encoded[i:i + 1], target_class=1)):.2f}")
    explanation = onehot.explain(encoded[:1], target_class=1)
    print(f"pieces ms: read one row {median_ms(lambda i: schema.read(rows.iloc[i:i + 1])):.3f}, write one row "
          f"{median_ms(lambda i: schema.write(encoded[i:i + 1])):.3f}, the Pipeline on one row "
          f"{median_ms(lambda i: model.predict_proba(rows.iloc[i:i + 1])):.3f}, the explanation in the table's form "
          f"{median_ms(lambda i: table_explanation(explanation, schema, rows.index[:1], None)):.3f}")


if __name__ == "__main__":
    main()
