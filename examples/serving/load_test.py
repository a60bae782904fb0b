"""Measure the explainers' server under 16 concurrent clients for MLServer's ``parallel_workers`` and adaptive batching.

Run it from the repository root after ``python examples/serving/train.py`` (it reads the trained
artefacts). For each configuration it copies the explainer server's folder to a temporary
folder, changes ``parallel_workers`` and the models' ``max_batch_size`` / ``max_batch_time``,
starts ``mlserver start`` on loopback ports next to one classifier server, sends a bounded
number of single-instance requests from 16 client threads, and stops the server. It prints a
Markdown table (requests/s, p50, p99, errors)::

    OMP_NUM_THREADS=1 python examples/serving/load_test.py --requests 400

Everything listens on 127.0.0.1 only.
"""

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import pandas as pd
import requests
from compas_table import split
from request import array_request, pandas_request, table

from alibi_countergan.datasets import load_compas
from alibi_countergan.testing import free_ports, stop_process_group

HERE = Path(__file__).resolve().parent
START_TIMEOUT_S = 180


class Server:
    """``mlserver start`` in ``folder`` on loopback ports; :meth:`stop` ends it (SIGTERM, then SIGKILL)."""

    def __init__(self, folder: Path, parallel_workers: int) -> None:
        ports = free_ports(3)
        settings = json.loads((folder / "settings.json").read_text())
        settings.update(host="127.0.0.1", http_port=ports[0], grpc_port=ports[1], metrics_port=ports[2],
                        parallel_workers=parallel_workers)
        (folder / "settings.json").write_text(json.dumps(settings))
        self.url = f"http://127.0.0.1:{ports[0]}"
        self.log = open(folder / "server.log", "w")
        self.process = subprocess.Popen([sys.executable, "-m", "mlserver.cli.main", "start", "."], cwd=folder,
                                        stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)

    def wait_ready(self, model: str) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"mlserver exited with {self.process.returncode}; see {self.log.name}")
            try:
                if requests.get(f"{self.url}/v2/models/{model}/ready", timeout=5).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"{model} was not ready in {START_TIMEOUT_S} s; see {self.log.name}")

    def stop(self) -> None:
        stop_process_group(self.process)
        self.log.close()


Instances = Union[pd.DataFrame, np.ndarray]


def _body(X: Instances, i: int) -> Dict[str, Any]:
    """A single-instance request for row ``i``: the pandas codec for a table, one FP32 tensor for an array."""
    if isinstance(X, pd.DataFrame):
        return pandas_request(X.iloc[i:i + 1], target_class=1)
    return array_request(X[i:i + 1], target_class=1)


def _own_answer(X: Instances, i: int, data: Dict[str, Any]) -> bool:
    """Whether an explanation is that of row ``i``: one counterfactual, which minus its residual is the row."""
    if isinstance(X, pd.DataFrame):
        cf, residual = table(data["cf"]["X"]), table(data["residual"])
        row = X.iloc[i]
        numbers = list(residual.columns)
        same_numbers = np.allclose(cf[numbers].to_numpy(float) - residual.to_numpy(float), row[numbers].to_numpy(float))
        others = [c for c in X.columns if c not in numbers and c in ("sex", "race")]  # immutable categories
        return len(cf) == 1 and bool(same_numbers) and all(cf[c].iloc[0] == row[c] for c in others)
    return bool(np.allclose(np.asarray(data["cf"]["X"], np.float32) - np.asarray(data["residual"], np.float32),
                            X[i][None], atol=1e-4))


def run_load(url: str, model: str, X: Instances, n_requests: int, n_clients: int) -> Tuple[float, List[float], int,
                                                                                             Optional[str]]:
    """Send ``n_requests`` single-instance requests from ``n_clients`` threads: (wall s, latencies s, errors, one)."""
    local = threading.local()

    def call(i: int) -> Tuple[float, Optional[str]]:
        if not hasattr(local, "session"):
            local.session = requests.Session()
        row = i % len(X)
        start = time.perf_counter()
        response = local.session.post(f"{url}/v2/models/{model}/infer", json=_body(X, row), timeout=60)
        elapsed = time.perf_counter() - start
        if response.status_code != 200:
            return elapsed, f"{response.status_code} {response.text[:300]}"
        # the answer must be this request's own explanation: one row, for this instance
        try:
            ok = _own_answer(X, row, json.loads(response.json()["outputs"][0]["data"][0])["data"])
        except (KeyError, IndexError, ValueError, TypeError) as err:
            return elapsed, f"200 with an unreadable explanation ({type(err).__name__}: {err})"
        return elapsed, None if ok else "200 with another request's explanation"

    for i in range(20):  # warm-up
        call(i)
    start = time.perf_counter()
    with ThreadPoolExecutor(n_clients) as pool:
        results = list(pool.map(call, range(n_requests)))
    wall = time.perf_counter() - start
    errors = [e for _, e in results if e is not None]
    return wall, [t for t, _ in results], len(errors), errors[0] if errors else None


def example_instances() -> Dict[str, Instances]:
    """200 test people per explainer: raw table rows for the black-box one, the one-hot array of its torch
    model for the white-box one."""
    return {"compas-explainer": split(seed=0)[1].iloc[:200].reset_index(drop=True),
            "compas-explainer-whitebox": load_compas().split(0.2, seed=0)[1][:200]}


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Measure every configuration and print the table; returns the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=HERE, help="folder holding the trained server folders")
    parser.add_argument("--requests", type=int, default=400, help="requests per configuration and model")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--models", nargs="+", default=["compas-explainer", "compas-explainer-whitebox"])
    args = parser.parse_args(argv)

    instances = example_instances()
    rows = ["| model | parallel_workers | adaptive batching | requests/s | p50 ms | p99 ms | errors |",
            "|---|---|---|---|---|---|---|"]
    with tempfile.TemporaryDirectory() as tmp:
        classifier_folder = Path(tmp) / "classifier-server"
        shutil.copytree(args.root / "classifier-server", classifier_folder)
        classifier = Server(classifier_folder, parallel_workers=1)
        try:
            classifier.wait_ready("compas-classifier")
            for workers in args.workers:
                for batching in (False, True):
                    folder = Path(tmp) / f"explainer-{workers}-{batching}"
                    shutil.copytree(args.root / "explainer-server", folder)
                    for settings_file in folder.glob("*/model-settings.json"):
                        settings = json.loads(settings_file.read_text())
                        extra = settings["parameters"]["extra"]
                        if "infer_uri" in extra and extra["infer_uri"].startswith("http"):
                            extra["infer_uri"] = f"{classifier.url}/v2/models/compas-classifier/infer"
                        if batching:
                            settings.update(max_batch_size=16, max_batch_time=0.005)
                        settings_file.write_text(json.dumps(settings))
                    server = Server(folder, parallel_workers=workers)
                    try:
                        try:
                            for model in args.models:
                                server.wait_ready(model)
                        except RuntimeError:
                            log = (folder / "server.log").read_text(errors="replace")
                            refused = [line for line in log.splitlines()
                                       if "cannot split one explanation" in line and "raise" not in line][:1]
                            rows.append(f"| all | {workers} | {'on' if batching else 'off'} | refused at start-up: "
                                        f"{(refused or ['see the log'])[0][-160:]} | | | |")
                            continue
                        for model in args.models:
                            wall, latencies, n_errors, example = run_load(server.url, model, instances[model],
                                                                          args.requests, args.clients)
                            ms = 1000 * np.asarray(latencies)
                            rows.append(f"| {model} | {workers} | {'on' if batching else 'off'} | "
                                        f"{args.requests / wall:.0f} | {np.median(ms):.0f} | "
                                        f"{np.quantile(ms, 0.99):.0f} | {n_errors} |")
                            if example:
                                print(f"{model}, workers {workers}, batching {batching}: first error {example}",
                                      file=sys.stderr)
                    finally:
                        server.stop()
        finally:
            classifier.stop()
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
