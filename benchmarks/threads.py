"""Fit time with one intra-op thread and with PyTorch's default, on a quiet machine and next to busy processes.

Usage (from the repository root; about 15 minutes on two cores)::

    python benchmarks/threads.py [--compas-steps 300] [--mnist-steps 200] [--cap 150] [--json out.json]

For COMPAS (the shipped table, the demo's classifier) and MNIST (the repository's 5,000-image
subset, a small CNN) a white-box CounteRGAN is fitted with ``n_threads=1`` and with
``n_threads=None`` (PyTorch's default: one thread per core), first with nothing else started by
the script, then next to two busy processes (``python -c "while True: pass"``, started and
killed by the script). Every fit runs in a fresh process. A fit that would take longer than
``--cap`` seconds is stopped there and its time is extrapolated: the time to its first iteration's
end (checks, the classifier on the fit data, building the networks) plus the mean time of its
later iterations for the remaining ones (marked in the table). The load average is printed with
each row: other users' work counts too.
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

REPO = Path(__file__).resolve().parents[1]


def _one(dataset: str, n_threads: Optional[int], steps: int, cap: float) -> Dict[str, Any]:
    """One fit in this process; returns its figures."""
    import torch
    from torch import nn

    from alibi_countergan import CounteRGAN, classifiers
    from alibi_countergan.callbacks import StopTraining
    from alibi_countergan.datasets import load_compas, load_mnist

    default_threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the classifier's training is not what is measured
    if dataset == "compas":
        from alibi_countergan.demo import train_classifier

        data = load_compas()
        X_train, _, y_train, _ = data.split(0.2, seed=0)
        model = train_classifier(X_train, y_train, seed=0)
        shape = (1, X_train.shape[1])
        extra: Dict[str, Any] = dict(cat_vars=data.cat_vars, feature_names=data.feature_names)
    else:
        X_train, y_train, _, _ = load_mnist(REPO / "data" / "mnist-subset.npz")
        model = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                              nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                              nn.Linear(32 * 7 * 7, 64), nn.ReLU(), nn.Linear(64, 10), nn.Softmax(dim=1))

        class ChannelsLast(nn.Module):
            def __init__(self, net: nn.Module) -> None:
                super().__init__()
                self.net = net

            def forward(self, x: torch.Tensor) -> torch.Tensor:
                return self.net(x.permute(0, 3, 1, 2))

        model = classifiers.train(ChannelsLast(model), X_train, y_train, epochs=1, seed=0, learning_rate=1e-3)
        shape = (1,) + X_train.shape[1:]
        extra = {}
    torch.set_num_threads(default_threads)  # the user's setting, as n_threads=None leaves it

    ends: List[float] = []  # when each iteration ended
    start = time.perf_counter()

    def stop_at_cap(step: int, losses: Any, explainer: Any) -> None:
        ends.append(time.perf_counter())
        if ends[-1] - start > cap:
            raise StopTraining

    threads_in_fit: List[int] = []
    explainer = CounteRGAN(model, shape, train_steps=steps, verbose=False, seed=0, n_threads=n_threads,
                           callbacks=[stop_at_cap, lambda *a: threads_in_fit.append(torch.get_num_threads())],
                           **extra)
    start = time.perf_counter()
    explainer.fit(X_train)
    seconds = time.perf_counter() - start
    capped = len(ends) < steps
    setup = ends[0] - start  # checks, the predictor on the fit data, building the networks, the first iteration
    per_step = (ends[-1] - ends[0]) / max(1, len(ends) - 1)
    return {"dataset": dataset, "n_threads": n_threads, "threads_in_fit": max(threads_in_fit),
            "torch_default": default_threads, "steps": steps, "steps_run": len(ends), "setup_seconds": setup,
            "seconds_per_step": per_step, "seconds": setup + per_step * (steps - 1) if capped else seconds,
            "capped": capped, "load_average": os.getloadavg()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--compas-steps", type=int, default=300)
    parser.add_argument("--mnist-steps", type=int, default=200)
    parser.add_argument("--cap", type=float, default=150.0, help="seconds after which a fit is stopped")
    parser.add_argument("--busy", type=int, default=2, help="competing CPU-bound processes in the loaded runs")
    parser.add_argument("--datasets", nargs="+", default=["compas", "mnist"])
    parser.add_argument("--json", type=Path, help="also write the rows to this file")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--n-threads", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        steps = args.compas_steps if args.one == "compas" else args.mnist_steps
        print(json.dumps(_one(args.one, args.n_threads or None, steps, args.cap)))
        return 0

    # PyTorch's own default in the child processes: no OMP_NUM_THREADS from the caller's shell
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    rows = []
    print(f"{'load':<14}{'data':<8}{'n_threads':>10}{'threads':>9}{'fit s':>9}{'s/iter':>8}{'iters run':>11}  "
          f"{'load average (1, 5, 15 min)':<28}")
    for busy in sorted({0, args.busy}):
        hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(busy)]
        try:
            time.sleep(2 if busy else 0)
            for dataset in args.datasets:
                for n_threads in (1, 0):
                    out = subprocess.run(
                        [sys.executable, str(Path(__file__).resolve()), "--one", dataset, "--n-threads",
                         str(n_threads), "--compas-steps", str(args.compas_steps), "--mnist-steps",
                         str(args.mnist_steps), "--cap", str(args.cap)],
                        env=env, capture_output=True, text=True, check=True)
                    row = json.loads(out.stdout.strip().splitlines()[-1])
                    row["busy_processes"] = busy
                    rows.append(row)
                    label = "quiet" if not busy else f"{busy} busy procs"
                    shown = "1" if row["n_threads"] else "None"
                    mark = "*" if row["capped"] else " "
                    load = ", ".join(f"{v:.1f}" for v in row["load_average"])
                    print(f"{label:<14}{dataset:<8}{shown:>10}{row['threads_in_fit']:>9}{row['seconds']:>8.1f}{mark}"
                          f"{row['seconds_per_step']:>8.3f}{row['steps_run']:>11}  {load:<28}", flush=True)
        finally:
            for hog in hogs:
                hog.kill()
                hog.wait()
    print("* stopped at the cap; time extrapolated from its set-up and its mean time per iteration")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
