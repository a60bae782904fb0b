"""Ask the explainer's server for recourse for COMPAS test people expected to reoffend; print what it proposes.

Start both servers first (see docs/serving.md), then run from the repository root::

    python examples/serving/request.py                       # the black-box explainer on port 8090: raw table rows
    python examples/serving/request.py --model compas-explainer-whitebox --people 5   # one-hot arrays

The black-box explainer was fitted on the raw table, so a request holds people as rows of named, typed
columns (MLServer's pandas codec), and the answer says what to change in those columns; the white-box
explainer takes the one-hot encoded array its PyTorch classifier reads.
"""

import argparse
import json
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np
import pandas as pd
import requests
from compas_table import TARGET_NAMES, split


def pandas_request(frame: pd.DataFrame, **explain_parameters: Any) -> Dict[str, Any]:
    """The rows of ``frame`` as a V2 request in MLServer's pandas codec (what ``PandasCodec.encode_request`` writes).

    One input per column, named by it, of shape ``[n, 1]``: integers as INT64, other numbers as FP64, bools as
    BOOL, strings as BYTES (with the input's ``content_type`` ``"str"``); the request's ``content_type`` is
    ``"pd"``. ``explain_parameters`` (e.g. ``target_class=1``) go to the explainer.
    """
    inputs: List[Dict[str, Any]] = []
    for name in frame.columns:
        column = frame[name]
        entry: Dict[str, Any] = {"name": str(name), "shape": [len(frame), 1]}
        if pd.api.types.is_bool_dtype(column):
            entry.update(datatype="BOOL", data=[bool(v) for v in column])
        elif pd.api.types.is_integer_dtype(column):
            entry.update(datatype="INT64", data=[int(v) for v in column])
        elif pd.api.types.is_float_dtype(column):
            entry.update(datatype="FP64", data=[float(v) for v in column])
        else:  # strings, and pandas categoricals of strings
            entry.update(datatype="BYTES", data=[str(v) for v in column], parameters={"content_type": "str"})
        inputs.append(entry)
    return {"inputs": inputs, "parameters": {"content_type": "pd", "explain_parameters": explain_parameters}}


def array_request(X: np.ndarray, **explain_parameters: Any) -> Dict[str, Any]:
    """A numeric batch ``(n, n_features)`` as a V2 request with one FP32 input tensor."""
    return {"inputs": [{"name": "X", "shape": list(X.shape), "datatype": "FP32", "data": X.ravel().tolist()}],
            "parameters": {"explain_parameters": explain_parameters}}


def explain(url: str, model: str, X: Union[pd.DataFrame, np.ndarray], **explain_parameters: Any) -> Dict[str, Any]:
    """One V2 inference request to an explainer model; returns the decoded explanation (``meta`` and ``data``).

    ``X`` is a DataFrame (sent with the pandas codec) for an explainer fitted on a table, else an array.

    Raises
    ------
    RuntimeError
        With the server's error message when it does not answer 200.
    """
    body = pandas_request(X, **explain_parameters) if isinstance(X, pd.DataFrame) else array_request(
        X, **explain_parameters)
    response = requests.post(f"{url}/v2/models/{model}/infer", json=body, timeout=60)
    if response.status_code != 200:
        raise RuntimeError(f"{model} answered {response.status_code}: {response.text}")
    # the explanation is alibi's Explanation.to_json(), in the first output's only element
    return json.loads(response.json()["outputs"][0]["data"][0])


def table(split_frame: Dict[str, Any]) -> pd.DataFrame:
    """A DataFrame written by the explainer (pandas' ``split`` orientation: columns, index, data) read back."""
    return pd.DataFrame(split_frame["data"], columns=split_frame["columns"], index=split_frame["index"])


def print_table_recourse(result: Dict[str, Any], people: List[int]) -> None:
    """Each person's probabilities and the explainer's own words for the changes (``recourse``)."""
    counterfactuals = table(result["cf"]["X"])
    for i in people:
        print(f"person {i}: P({TARGET_NAMES[1]}) {result['orig_proba'][i][1]:.2f} -> "
              f"{result['cf']['proba'][i][1]:.2f}, reached: {result['success'][i]}")
        print(f"    {result['recourse'][i]}")
        print(f"    counterfactual: {counterfactuals.iloc[i].to_dict()}")


def print_array_recourse(result: Dict[str, Any], people: List[int], X: np.ndarray) -> None:
    """Each person's probabilities and changes, read from the one-hot arrays with the data set's names."""
    from alibi_countergan.datasets import load_compas  # imports alibi (and TensorFlow): only for the arrays

    data = load_compas()
    for i in people:
        before, after = data.describe(X[i]), data.describe(np.asarray(result["cf"]["X"][i]))
        changes = [f"{k}: {_text(before[k])} -> {_text(after[k])}" for k in before if before[k] != after[k]]
        print(f"person {i}: P({TARGET_NAMES[1]}) {result['orig_proba'][i][1]:.2f} -> "
              f"{result['cf']['proba'][i][1]:.2f}, reached: {result['success'][i]}")
        print(f"    {'; '.join(changes) or 'no change'}")


def _text(value: Union[float, str]) -> str:
    """A value as a person reads it: whole numbers without a decimal point (3, not 3.0)."""
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Send one batch request for 100 test people and print the changes proposed to some; returns the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8090", help="the explainer server's address")
    parser.add_argument("--model", default="compas-explainer")
    parser.add_argument("--people", type=int, default=3)
    args = parser.parse_args(argv)

    if args.model == "compas-explainer-whitebox":
        from alibi_countergan.datasets import load_compas

        X: Union[pd.DataFrame, np.ndarray] = load_compas().split(0.2, seed=0)[1][:100]
    else:
        X = split(seed=0)[1].iloc[:100].reset_index(drop=True)  # raw rows: named, typed columns
    explanation = explain(args.url, args.model, X, target_class=1)  # one request for the whole batch
    result = explanation["data"]
    # show the first people the classifier expects to reoffend (class 0)
    people = [i for i, c in enumerate(result["orig_class"]) if c == 0][: args.people]
    if isinstance(X, pd.DataFrame):
        print_table_recourse(result, people)
    else:
        print_array_recourse(result, people, X)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
