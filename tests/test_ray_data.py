"""Offline recourse on Ray Data: a saved black-box explainer on a local Ray with 2 workers, 100,000 rows.

Needs the ray extra (``tox -e ray``); skipped where Ray Data is not installed.
"""

import sys
import time
from functools import partial
from typing import Any, Dict

import numpy as np
import pytest

ray = pytest.importorskip("ray")
pytest.importorskip("ray.data")
pd = pytest.importorskip("pandas")

import joblib  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402

from alibi_countergan import CounteRGAN  # noqa: E402
from alibi_countergan.ray_data import ExplainBatches, explain_dataset  # noqa: E402

pytestmark = pytest.mark.ray

N_ROWS = 100_000


def _predict_proba_of(path: str) -> Any:
    """The predictor factory: runs in each Ray worker, loading the classifier there."""
    return joblib.load(path).predict_proba


@pytest.fixture(scope="module")
def saved(compas, tmp_path_factory) -> Dict[str, Any]:
    data, X_train, X_test, y_train, _ = compas
    root = tmp_path_factory.mktemp("ray")
    classifier = LogisticRegression(max_iter=500).fit(X_train, y_train)
    joblib.dump(classifier, root / "classifier.joblib")
    explainer = CounteRGAN(classifier.predict_proba, (1, X_train.shape[1]), method="black-box",
                           feature_names=data.feature_names, cat_vars=data.cat_vars, train_steps=200, verbose=False,
                           seed=0).fit(X_train)
    explainer.save(root / "explainer")
    rows = np.resize(X_test, (N_ROWS, X_test.shape[1])).astype(np.float32)
    return {"root": root, "explainer": explainer, "names": data.feature_names, "rows": rows}


@pytest.fixture(scope="module")
def local_ray():
    from ray import cloudpickle  # Ray's own copy pickles the tasks

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the workers cannot import this test module
    ray.init(num_cpus=2, include_dashboard=False, configure_logging=False,
             runtime_env={"env_vars": {"OMP_NUM_THREADS": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}})
    try:
        yield ray
    finally:
        ray.shutdown()
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


def test_a_saved_explainer_on_ray_data_matches_one_in_process_call(saved, local_ray, capsys):
    names, rows = saved["names"], saved["rows"]
    table = pd.DataFrame(rows, columns=names)
    table.insert(0, "row", np.arange(N_ROWS))
    factory = partial(_predict_proba_of, str(saved["root"] / "classifier.joblib"))

    start = time.perf_counter()
    expected = saved["explainer"].explain(rows, target_class=1)
    in_process_s = time.perf_counter() - start

    dataset = ray.data.from_pandas(table)
    start = time.perf_counter()
    out = explain_dataset(dataset, str(saved["root"] / "explainer"), factory, names, concurrency=2,
                          batch_size=8192, target_class=1).to_pandas()
    ray_s = time.perf_counter() - start

    out = out.sort_values("row").reset_index(drop=True)
    assert len(out) == N_ROWS and np.array_equal(out["row"].to_numpy(), np.arange(N_ROWS))
    assert np.array_equal(out[names].to_numpy(np.float32), rows)  # the input columns pass through
    cf = out[[f"cf_{name}" for name in names]].to_numpy(np.float32)
    # rows go through the networks in other batch sizes than in one call: equal up to float32 rounding
    np.testing.assert_allclose(cf, expected.cf["X"], rtol=0, atol=1e-4)
    assert np.mean(out["success"].to_numpy() == expected.data["success"]) > 0.999
    assert np.array_equal(out["target"].to_numpy(), np.ones(N_ROWS))
    with capsys.disabled():
        print(f"\n[ray data] {N_ROWS} rows: one in-process explain call {N_ROWS / in_process_s:,.0f} rows/s "
              f"({in_process_s:.2f} s); Ray Data, 2 workers, actors started and the explainer loaded in each "
              f"{N_ROWS / ray_s:,.0f} rows/s ({ray_s:.1f} s)")


def test_feature_columns_that_do_not_fit_the_explainer_are_refused(saved):
    factory = partial(_predict_proba_of, str(saved["root"] / "classifier.joblib"))
    with pytest.raises(ValueError, match=r"names 3 columns; the explainer takes instances of shape \(16,\)"):
        ExplainBatches(str(saved["root"] / "explainer"), factory, saved["names"][:3], {})
    batches = ExplainBatches(str(saved["root"] / "explainer"), factory, saved["names"], {"target_class": 1})
    with pytest.raises(ValueError, match=r"lacks the feature columns \['age'\]"):
        batches({name: saved["rows"][:4, j] for j, name in enumerate(saved["names"]) if name != "age"})
    explained = batches({name: saved["rows"][:4, j] for j, name in enumerate(saved["names"])})
    assert np.array_equal(explained["cf_class"], saved["explainer"].explain(saved["rows"][:4],
                                                                             target_class=1).cf["class"])

