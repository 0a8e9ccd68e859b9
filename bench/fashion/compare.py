#!/usr/bin/python3
"""Baselines for `gng run examples/fashion-mnist-local.yaml`: Optuna TPE and random search driving gng's
own trainer (build/bench/train), in gng's search space, under the same policy and the same
successive-halving schedule and wall-clock budget. Only the proposer differs.

    /usr/bin/python3 bench/fashion/compare.py --method tpe    --config examples/fashion-mnist-local.yaml
    /usr/bin/python3 bench/fashion/compare.py --method random --config examples/fashion-mnist-local.yaml

Prints progress and, at the end, one JSON line with the promoted design, its validation and test
accuracy, and the evaluations done. Measured numbers go to docs/benchmarks.md.
"""
import argparse
import concurrent.futures as cf
import json
import math
import os
import random
import subprocess
import sys
import tempfile
import time

import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
TRAIN = os.path.join(ROOT, "build", "bench", "train")


def load(path):
    with open(path) as f:
        return yaml.safe_load(f)


def part(cfg, key, base):
    v = cfg[key]
    return load(os.path.join(base, v)) if isinstance(v, str) else v, (os.path.join(base, v) if isinstance(v, str) else None)


def design_arg(d):
    return ",".join(f"{k}={v}" for k, v in d.items())


class Runner:
    def __init__(self, args):
        self.cfg = load(args.config)
        base = os.path.dirname(os.path.abspath(args.config))
        self.space, self.space_file = part(self.cfg, "space", base)
        self.policy, _ = part(self.cfg, "policy", base)
        b = self.policy.get("budgets", {})
        self.cycles, self.candidates = b.get("cycles", 3), b.get("candidates", 24)
        self.budget_s = args.budget_s or b.get("wall_clock_s", 1800)
        self.limits = []
        if "max_params" in b:
            self.limits += ["--max-params", str(b["max_params"])]
        if "max_flops" in b:
            self.limits += ["--max-flops", str(b["max_flops"])]
        f = self.cfg.get("fidelity", {})
        self.rungs, self.eta, self.batch = f.get("rungs", [{"epochs": 1}]), f.get("eta", 3), f.get("batch", 128)
        self.eval_samples = f.get("eval_samples", 5000)
        self.per_cycle = self.cfg.get("search", {}).get("per_cycle", 8)
        self.workers = self.cfg.get("workers", 2)
        self.seed = args.seed
        self.start = time.time()
        self.tmp = tempfile.mkdtemp(prefix="gng-compare-")
        self.evaluations = 0
        self.checking = 0.0  # seconds spent checking designs in separate processes: not charged

    def elapsed(self):
        return time.time() - self.start - self.checking

    def left(self):
        return self.budget_s - self.elapsed()

    def score(self, m):
        return sum(w * m[k] for k, w in self.policy.get("objectives", {"accuracy": 1}).items())

    def safe(self, m):
        s = self.policy.get("safety", {})
        return (m["accuracy"] >= s.get("min_accuracy", 0) and m["robustness"] >= s.get("min_robustness", 0)
                and (s.get("max_latency_ms", 0) == 0 or m["latency_ms"] <= s["max_latency_ms"]))

    def valid(self, d):
        t = time.time()
        r = subprocess.run([TRAIN, "--space", self.space_file, "--design", design_arg(d), "--check"] + self.limits,
                           capture_output=True, text=True)
        self.checking += time.time() - t
        return r.returncode == 0

    def train(self, cid, d, rung, threads):
        g = self.rungs[rung]
        top = rung == len(self.rungs) - 1
        cmd = [TRAIN, "--space", self.space_file, "--design", design_arg(d), "--epochs", str(g["epochs"]),
               "--batch", str(self.batch), "--seed", str(self.seed * 1000003 + cid), "--threads", str(threads), "--json"]
        cmd += self.limits
        if g.get("samples"):
            cmd += ["--samples", str(g["samples"])]
        if g.get("augment"):
            cmd.append("--augment")
        if top:
            cmd += ["--save", os.path.join(self.tmp, f"c{cid}.pt"), "--test"]
        else:
            cmd += ["--max-eval", str(self.eval_samples)]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"c{cid}: {r.stderr.strip()}")
        self.evaluations += 1
        return json.loads(r.stdout.strip().splitlines()[-1])["metrics"]

    # One decision at a time, gated one-ofs only when their flag is on.
    def sample(self, choose):
        d = {}
        for name, spec in self.space["decisions"].items():
            if spec == "flag":
                d[name] = choose(name, ["false", "true"])
            else:
                values = [str(v) for v in (spec.get("one_of") or spec.get("ordinal"))]
                if "when" in spec and d.get(spec["when"]) != "true":
                    continue
                d[name] = choose(name, values)
        return d

    def run(self, method):
        import optuna
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=self.seed))
        rng = random.Random(self.seed)
        seen, designs, scores, trials = set(), {}, {}, {}
        best, best_test, promoted = None, None, None
        cid = 0
        for cycle in range(self.cycles):
            if self.left() <= 0 or cid >= self.candidates:
                break
            ids = []
            for _ in range(min(self.per_cycle, self.candidates - cid)):
                for attempt in range(1000):
                    if method == "tpe":
                        trial = study.ask()
                        d = self.sample(lambda n, vs: trial.suggest_categorical(n, vs))
                    else:
                        trial = None
                        d = self.sample(lambda n, vs: rng.choice(vs))
                    key = design_arg(d)
                    if key in seen or not self.valid(d):
                        if trial is not None:  # teach TPE that this region is out of bounds
                            study.tell(trial, -1.0)
                        continue
                    seen.add(key)
                    cid += 1
                    designs[cid], trials[cid] = d, trial
                    ids.append(cid)
                    break
            contenders = ids
            for rung in range(len(self.rungs)):
                if rung > 0:
                    keep = self.rungs[rung].get("keep") or math.ceil(len(contenders) / self.eta)
                    contenders = sorted(contenders, key=lambda c: -scores[(c, rung - 1)])[:keep]
                threads = self.workers if len(contenders) == 1 else 1
                with cf.ThreadPoolExecutor(self.workers) as pool:
                    futures = {pool.submit(self.train, c, designs[c], rung, threads): c for c in contenders
                               if self.left() > 0}
                    for fu in cf.as_completed(futures):
                        c = futures[fu]
                        m = fu.result()
                        scores[(c, rung)] = self.score(m)
                        if rung == 0 and trials[c] is not None:
                            study.tell(trials[c], scores[(c, 0)])
                        if rung == len(self.rungs) - 1 and self.safe(m) and (best is None or scores[(c, rung)] > best[0]):
                            best, best_test, promoted = (scores[(c, rung)], m["accuracy"]), m["test_accuracy"], c
                        print(f"[{self.elapsed():7.1f} s] {method} cycle {cycle + 1} c{c} rung {rung}: "
                              f"acc {m['accuracy']:.4f} score {scores[(c, rung)]:.4f}", flush=True)
                if self.left() <= 0:
                    break
        return {"method": method, "seed": self.seed, "budget_s": self.budget_s, "elapsed_s": self.elapsed(), "checking_s": self.checking,
                "candidates": cid, "evaluations": self.evaluations,
                "promoted": designs.get(promoted), "val_accuracy": best[1] if best else None,
                "test_accuracy": best_test}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--method", choices=["tpe", "random"], required=True)
    ap.add_argument("--config", default=os.path.join(ROOT, "examples", "fashion-mnist-local.yaml"))
    ap.add_argument("--budget-s", type=float, default=0, help="override the policy's wall-clock budget")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    if not os.access(TRAIN, os.X_OK):
        sys.exit(f"{TRAIN} is missing: build gng first (bash scripts/setup.sh)")
    print(json.dumps(Runner(args).run(args.method)), flush=True)


if __name__ == "__main__":
    main()
