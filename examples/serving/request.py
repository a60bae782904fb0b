"""Ask the explainer's server for recourse for COMPAS test people expected to reoffend; print what it proposes.

Start both servers first (see docs/serving.md), then run from the repository root::

    python examples/serving/request.py                       # the black-box explainer on port 8090
    python examples/serving/request.py --model compas-explainer-whitebox --people 5
"""

import argparse
import json
from typing import Any, Dict, Optional, Sequence

import numpy as np
import requests

from alibi_countergan.datasets import load_compas


def explain(url: str, model: str, X: np.ndarray, **explain_parameters: Any) -> Dict[str, Any]:
    """One V2 inference request to an explainer model; returns the decoded explanation (``meta`` and ``data``).

    Raises
    ------
    RuntimeError
        With the server's error message when it does not answer 200.
    """
    body = {
        "inputs": [{"name": "X", "shape": list(X.shape), "datatype": "FP32", "data": X.ravel().tolist()}],
        "parameters": {"explain_parameters": explain_parameters},
    }
    response = requests.post(f"{url}/v2/models/{model}/infer", json=body, timeout=60)
    if response.status_code != 200:
        raise RuntimeError(f"{model} answered {response.status_code}: {response.text}")
    # the explanation is alibi's Explanation.to_json(), in the first output's only element
    return json.loads(response.json()["outputs"][0]["data"][0])


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Send one batch request and print each person's proposed changes; returns the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8090", help="the explainer server's address")
    parser.add_argument("--model", default="compas-explainer")
    parser.add_argument("--people", type=int, default=3)
    args = parser.parse_args(argv)

    data = load_compas()
    _, X_test, _, _ = data.split(0.2, seed=0)
    X = X_test[:100]
    explanation = explain(args.url, args.model, X, target_class=1)  # one request for the whole batch
    result = explanation["data"]
    favourable = data.target_names[1]
    # show the first people the classifier expects to reoffend (class 0)
    people = [i for i, c in enumerate(result["orig_class"]) if c == 0][: args.people]
    for i in people:
        before, after = data.describe(X[i]), data.describe(np.asarray(result["cf"]["X"][i]))
        changes = {k: (before[k], after[k]) for k in before if before[k] != after[k]}
        print(f"person {i}: P({favourable}) {result['orig_proba'][i][1]:.2f} -> {result['cf']['proba'][i][1]:.2f}, "
              f"reached: {result['success'][i]}")
        for feature, (old, new) in changes.items():
            print(f"    {feature}: {old} -> {new}")
        if not changes:
            print("    no change needed")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
