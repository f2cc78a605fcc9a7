"""Computes survival_metrics.json: scikit-survival's time-dependent metrics on gbsg2, with their
inputs, so the Swift tests recompute them from the same numbers.

Run once by hand from this directory (/tmp/venv/bin/pip install scikit-survival lifelines;
/tmp/venv/bin/python make_survival_metric_fixtures.py); the tests never call Python.

Inputs: gbsg2's protocol split for seed 0; a lifelines CoxPHFitter (Efron, penalizer 0.01) fitted
on its train rows gives the test rows' risk scores (log partial hazards) and survival probabilities
at the evaluation times. Outputs (sksurv.metrics): concordance_index_censored (Harrell),
concordance_index_ipcw (Uno; without and with tau = 1825), cumulative_dynamic_auc (per time and
the mean), brier_score per time, integrated_brier_score. The censoring distribution is the
reverse Kaplan-Meier estimate of the train rows, as scikit-survival computes it. Calibration by
risk decile (below) uses lifelines' KaplanMeierFitter.
"""
import json

import lifelines
import numpy as np
import pandas as pd
import sksurv
from lifelines import CoxPHFitter
from sksurv.metrics import (brier_score, concordance_index_censored, concordance_index_ipcw,
                            cumulative_dynamic_auc, integrated_brier_score)
from sksurv.util import Surv

DATA = "../../../Topologies/data/"
frame = pd.read_csv(DATA + "gbsg2.csv")
with open(DATA + "splits/gbsg2_seed0.json") as f:
    split = json.load(f)
train, test = frame.iloc[split["train"]], frame.iloc[split["test"]]
features = sorted(c for c in frame.columns if c not in ("time", "event"))
cph = CoxPHFitter(penalizer=0.01).fit(train[features + ["time", "event"]], duration_col="time", event_col="event")
scores = np.log(cph.predict_partial_hazard(test[features]).to_numpy())
times = np.arange(365.0, 1826.0, 73.0)
survival = cph.predict_survival_function(test[features], times=times).to_numpy().T  # rows x times

y_train = Surv.from_arrays(train["event"].astype(bool), train["time"].astype(float))
y_test = Surv.from_arrays(test["event"].astype(bool), test["time"].astype(float))
auc, mean_auc = cumulative_dynamic_auc(y_train, y_test, scores, times)
_, brier = brier_score(y_train, y_test, survival, times)
out = {
    "_about": f"scikit-survival {sksurv.__version__}, lifelines {lifelines.__version__}; see make_survival_metric_fixtures.py",
    "train_times": train["time"].astype(float).tolist(), "train_events": train["event"].astype(int).tolist(),
    "test_times": test["time"].astype(float).tolist(), "test_events": test["event"].astype(int).tolist(),
    "scores": scores.tolist(), "times": times.tolist(), "survival": survival.tolist(),
    "harrell": concordance_index_censored(y_test["event"], y_test["time"], scores)[0],
    "uno": concordance_index_ipcw(y_train, y_test, scores)[0],
    "uno_tau": 1825.0,
    "uno_truncated": concordance_index_ipcw(y_train, y_test, scores, tau=1825.0)[0],
    "auc": auc.tolist(), "mean_auc": float(mean_auc),
    "brier": brier.tolist(), "ibs": float(integrated_brier_score(y_train, y_test, survival, times)),
}
# Calibration at each horizon: the test rows sorted by predicted S(t) (stable, ascending: the
# highest risk first), cut into 10 groups of consecutive rows (group k: rows k*n//10 to
# (k+1)*n//10 - 1), each with its mean predicted S(t) and the Kaplan-Meier S(t) of its rows
# (lifelines' KaplanMeierFitter, a step function).
from lifelines import KaplanMeierFitter
calibration = []
n = len(test)
for k, t in enumerate(times):
    order = np.argsort(survival[:, k], kind="mergesort")
    groups = []
    for g in range(10):
        rows = order[g * n // 10:(g + 1) * n // 10]
        km = KaplanMeierFitter().fit(test["time"].to_numpy()[rows], test["event"].to_numpy()[rows])
        groups.append({"rows": int(len(rows)), "predicted": float(survival[rows, k].mean()),
                       "observed": float(km.survival_function_at_times(t).iloc[0])})
    calibration.append(groups)
out["calibration"] = calibration

with open("survival_metrics.json", "w") as f:
    json.dump(out, f, indent=1)
