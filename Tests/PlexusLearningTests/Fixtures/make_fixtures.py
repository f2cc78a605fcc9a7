"""Computes the expected values in metrics.json with scikit-learn and lifelines.

Run once by hand (pip install numpy scikit-learn lifelines); the output is committed and the tests
never call Python. reference.json is a copy of shared/data/reference.json (scikit-learn and
lifelines numbers on the real datasets, including lifelines' Cox coefficients for gbsg2).
"""
import json
import numpy as np
import sklearn
import lifelines
from sklearn.metrics import accuracy_score, precision_score, recall_score, f1_score, roc_auc_score, log_loss
from lifelines.utils import concordance_index

rng = np.random.default_rng(20261123)
out = {"_about": f"scikit-learn {sklearn.__version__}, lifelines {lifelines.__version__}; "
       "classification: y_pred = (p > 0.5); survival: concordance_index(times, scores, events)",
       "classification": [], "concordance": []}


def classification(name, y, p):
    y = np.asarray(y, dtype=np.int64)
    p = np.asarray(p, dtype=np.float64)
    pred = (p > 0.5).astype(np.int64)
    out["classification"].append({
        "name": name, "labels": y.tolist(), "probabilities": p.tolist(),
        "accuracy": accuracy_score(y, pred),
        "precision": precision_score(y, pred, zero_division=0),
        "recall": recall_score(y, pred, zero_division=0),
        "f1": f1_score(y, pred, zero_division=0),
        "auc": roc_auc_score(y, p),
        "logloss": log_loss(y, p),
    })


classification("small-hand", [0, 0, 1, 1, 1, 0, 1, 0], [0.1, 0.4, 0.35, 0.8, 0.5, 0.5, 0.9, 0.2])
y = rng.integers(0, 2, 60)
classification("random-60", y, np.clip(0.3 * y + 0.7 * rng.random(60), 0, 1))
# Heavy ties in the scores (AUC must count them one half), and exact 0/1 probabilities (log-loss clipping).
classification("ties", rng.integers(0, 2, 50), np.round(rng.random(50) * 4) / 4)
classification("no-positive-predictions", [1, 0, 1, 0, 0], [0.2, 0.1, 0.4, 0.3, 0.05])


def concordance(name, t, s, e):
    t = np.asarray(t, dtype=np.float64)
    s = np.asarray(s, dtype=np.float64)
    e = np.asarray(e, dtype=np.int64)
    out["concordance"].append({"name": name, "times": t.tolist(), "scores": s.tolist(), "events": e.tolist(),
                               "cindex": concordance_index(t, s, e)})


concordance("small-hand", [5, 10, 10, 3, 8, 12, 10, 1], [4, 9, 7, 3, 9, 11, 10, 2], [1, 1, 0, 1, 0, 1, 1, 0])
n = 80
concordance("random-80", rng.integers(1, 30, n), rng.normal(size=n), rng.integers(0, 2, n))
# Ties everywhere: tied times (event/event, event/censored) and tied scores.
concordance("ties", rng.integers(1, 8, 60), rng.integers(0, 5, 60), rng.integers(0, 2, 60))
concordance("all-events", [2, 1, 3, 4, 4], [0.5, 0.2, 0.9, 0.7, 0.1], [1, 1, 1, 1, 1])

with open("metrics.json", "w") as f:
    json.dump(out, f, indent=1)
