"""Computes inference.json: the reference tables the inference tests compare `plexus train` with.

Run once by hand from this directory (python3 -m venv /tmp/venv && /tmp/venv/bin/pip install
lifelines statsmodels numpy pandas; /tmp/venv/bin/python make_inference_fixtures.py); the output
is committed and the tests never call Python.

The fits are Plexus' objectives exactly:

- Cox (gbsg2: every row; tcga_brca: split == "train", every column but pid, center and split;
  tcga_brca_by_centre: the same, stratified by center, the decentralized model's objective):
  Plexus maximises loglik_Efron(beta) - n*l2/2*||beta_z||^2 with beta_z the coefficients of the
  covariates z-scored by the population standard deviation. lifelines' CoxPHFitter z-scores by the
  sample standard deviation (ddof = 1) and penalises n*penalizer/2*||beta_s||^2 on that scale, so
  penalizer = l2*(n-1)/n is the same penalty. lifelines' summary (coef, exp(coef), se(coef), the 95%
  interval, z, p) and log_likelihood_ratio_test() are stored as lifelines prints them.
- Logistic (wdbc, every row): Plexus minimises mean log-loss + l2/2*||w_z||^2 (intercept free).
  statsmodels' Logit has no ridge penalty with standard errors (its fit_regularized is L1), and
  the unpenalised wdbc fit is separated, so: the coefficients are statsmodels'
  GLM(Binomial).fit_regularized(L1_wt=0, alpha = l2; 0 for the intercept) on the z-scored
  covariates, polished by Newton steps on statsmodels' own GLM score and Hessian plus the
  penalty's terms; the covariance is the inverse of (-Hessian + n*diag(alpha)), the penalised
  observed information, mapped to the raw scale (a linear map: Cov = A Cov_z A').
"""
import json

import lifelines
import numpy as np
import pandas as pd
import scipy.stats
import statsmodels
import statsmodels.api as sm
from lifelines import CoxPHFitter

DATA = "../../../Topologies/data/"
out = {"_about": f"lifelines {lifelines.__version__}, statsmodels {statsmodels.__version__}; see make_inference_fixtures.py"}


def cox(name, frame, l2, survival_rows=0, times=(), strata=None):
    n = len(frame)
    features = sorted(c for c in frame.columns if c not in ("time", "event", strata))
    cph = CoxPHFitter(penalizer=l2 * (n - 1) / n, strata=[strata] if strata else None)
    cph.fit(frame[features + ["time", "event"] + ([strata] if strata else [])], duration_col="time", event_col="event")
    s = cph.summary
    lrt = cph.log_likelihood_ratio_test()
    entry = {
        "rows": n, "events": int(frame["event"].sum()), "l2": l2, "ties": "efron", "strata": strata,
        "penalizer": cph.penalizer,
        "coefficients": [
            {"name": f, "coef": s.loc[f, "coef"], "hr": s.loc[f, "exp(coef)"], "se": s.loc[f, "se(coef)"],
             "lower": s.loc[f, "exp(coef) lower 95%"], "upper": s.loc[f, "exp(coef) upper 95%"],
             "z": s.loc[f, "z"], "p": s.loc[f, "p"]} for f in features],
        "log_likelihood": cph.log_likelihood_,
        "lrt": {"statistic": lrt.test_statistic, "df": int(lrt.degrees_freedom), "p": lrt.p_value},
    }
    if survival_rows:
        # S(t | x) = exp(-H0(t) * partial hazard) with lifelines' Breslow baseline as the step
        # function it is (predict_survival_function interpolates linearly between durations).
        h0 = cph.baseline_cumulative_hazard_.iloc[:, 0]
        partial = cph.predict_partial_hazard(frame[features].iloc[:survival_rows]).to_numpy()
        step = [float(h0[h0.index <= t].iloc[-1]) if (h0.index <= t).any() else 0.0 for t in times]
        entry["survival"] = {"times": list(times), "rows": survival_rows, "baseline_cumulative_hazard": step,
                             "probabilities": [[float(np.exp(-h * ph)) for h in step] for ph in partial]}
    out[name] = entry


gbsg2 = pd.read_csv(DATA + "gbsg2.csv")
cox("gbsg2", gbsg2, 0.01, survival_rows=5, times=(365, 730))
tcga = pd.read_csv(DATA + "tcga_brca.csv")
tcga = tcga[tcga["split"] == "train"].drop(columns=["pid", "split"]).reset_index(drop=True)
cox("tcga_brca", tcga.drop(columns=["center"]), 0.01)
# Stratified by centre: what the decentralized network fits (each site's own risk sets).
cox("tcga_brca_by_centre", tcga, 0.01, strata="center")

# Logistic regression on wdbc with the plan's l2.
wdbc = pd.read_csv(DATA + "wdbc.csv")
l2 = 0.0022
features = sorted(c for c in wdbc.columns if c != "diagnosis")
x = wdbc[features].to_numpy(dtype=np.float64)
y = wdbc["diagnosis"].to_numpy(dtype=np.float64)
n = len(y)
X = np.column_stack([x, np.ones(n)])
mean, sd = x.mean(axis=0), x.std(axis=0, ddof=0)
# The fit runs on the z-scored covariates, where the penalty is l2 on every weight: statsmodels'
# elastic-net solver (coordinate descent) and its Hessian both break down on the raw scale (areas
# of ~1000 beside fractal dimensions of ~0.06). The Hessian is statsmodels' expected one
# (observed=False): for the canonical logit link it equals the observed one, and the observed
# formula divides by p(1-p), which is 0 in floating point for the rows fitted with p = 1.
Z = np.column_stack([(x - mean) / sd, np.ones(n)])
alpha = np.append(np.full(len(features), l2), 0.0)
glm = sm.GLM(y, Z, family=sm.families.Binomial())
params = glm.fit_regularized(alpha=alpha, L1_wt=0.0, maxiter=1000, cnvrg_tol=1e-12).params
for newton_steps in range(1, 101):
    score = glm.score(params) - n * alpha * params
    information = -glm.hessian(params, observed=False) + n * np.diag(alpha)
    step = np.linalg.solve(information, score)
    params = params + step
    if np.max(np.abs(step)) < 1e-13:
        break
information = -glm.hessian(params, observed=False) + n * np.diag(alpha)
# Back to the raw scale: theta = A theta_z (w = w_z/s, b = b_z - sum(w_z*m/s)), Cov = A Cov_z A'.
d = len(features)
A = np.zeros((d + 1, d + 1))
A[np.arange(d), np.arange(d)] = 1 / sd
A[d, :d] = -mean / sd
A[d, d] = 1
zparams = params
params = A @ zparams
covariance = A @ np.linalg.inv(information) @ A.T
se = np.sqrt(np.diag(covariance))
z = params / se
p = 2 * scipy.stats.norm.sf(np.abs(z))
q = scipy.stats.norm.ppf(0.975)
names = features + ["(intercept)"]
loglik = glm.loglike(zparams)
penalized = loglik - 0.5 * n * np.sum(alpha * zparams ** 2)
ybar = y.mean()
null = n * (ybar * np.log(ybar) + (1 - ybar) * np.log(1 - ybar))
stat = 2 * (penalized - null)
out["wdbc"] = {
    "rows": n, "events": int(y.sum()), "l2": l2,
    "method": "statsmodels GLM Binomial fit_regularized(L1_wt=0, alpha = l2) on the z-scored covariates + Newton on GLM.score/hessian with the penalty; covariance inv(-hessian + n*diag(alpha)) mapped to the raw scale",
    "newton_steps": newton_steps,
    "max_score": float(np.max(np.abs(glm.score(zparams) - n * alpha * zparams))),
    "coefficients": [
        {"name": names[j], "coef": params[j], "or": np.exp(params[j]), "se": se[j],
         "lower": np.exp(params[j] - q * se[j]), "upper": np.exp(params[j] + q * se[j]), "z": z[j], "p": p[j]}
        for j in range(len(names))],
    "log_likelihood": loglik, "penalized_log_likelihood": penalized, "null_log_likelihood": null,
    "lrt": {"statistic": stat, "df": len(features), "p": scipy.stats.chi2.sf(stat, len(features))},
}


def plain(v):
    if isinstance(v, dict):
        return {k: plain(w) for k, w in v.items()}
    if isinstance(v, (list, tuple)):
        return [plain(w) for w in v]
    if isinstance(v, (np.floating, np.integer)):
        return v.item()
    return v


with open("inference.json", "w") as f:
    json.dump(plain(out), f, indent=1)
