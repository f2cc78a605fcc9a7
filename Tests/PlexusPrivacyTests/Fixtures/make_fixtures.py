"""Writes dp_accounting.json: (epsilon, delta) values from Google's dp-accounting, the independent
accountant PlexusPrivacy's RDP accountant is checked against (Tests/PlexusPrivacyTests).

    python3 -m venv /tmp/venv-dp && /tmp/venv-dp/bin/pip install dp-accounting==0.6.0
    /tmp/venv-dp/bin/python Tests/PlexusPrivacyTests/Fixtures/make_fixtures.py

Every case composes `steps` Poisson-subsampled Gaussian mechanisms (rate q, noise multiplier
sigma) under the add-or-remove-one relation, optionally after `release` full-batch Gaussian
releases (the statistics round) with noise multiplier `release_sigma`, with dp-accounting's RDP
accountant at its default orders; `pld_epsilon` is its PLD accountant on the same events (a
tighter reference, not what Plexus matches). `calibration` holds the noise multiplier
dp-accounting's calibration finds for a target epsilon.
"""
import json
import os

import dp_accounting
from absl import logging
from dp_accounting import dp_event
from dp_accounting.pld import pld_privacy_accountant
from dp_accounting.rdp import rdp_privacy_accountant

# dp-accounting warns for each fractional order near 1 whose series it cannot sum in 1000 terms, and
# leaves that order out; those orders are optimal only for very large epsilon.
logging.set_verbosity(logging.ERROR)


def event(q, sigma, steps, release, release_sigma):
    sgd = dp_event.SelfComposedDpEvent(dp_event.PoissonSampledDpEvent(q, dp_event.GaussianDpEvent(sigma)), steps)
    if release == 0:
        return sgd
    stats = dp_event.SelfComposedDpEvent(dp_event.GaussianDpEvent(release_sigma), release)
    return dp_event.ComposedDpEvent([stats, sgd])


def rdp_epsilon(e, delta):
    accountant = rdp_privacy_accountant.RdpAccountant()
    accountant.compose(e)
    return accountant.get_epsilon(delta)


def pld_epsilon(e, delta):
    accountant = pld_privacy_accountant.PLDAccountant(value_discretization_interval=1e-4)
    accountant.compose(e)
    return accountant.get_epsilon(delta)


cases = []
for sigma in [0.5, 0.8, 1.0, 1.5, 2.5, 5.0]:
    for q in [0.001, 0.01, 0.05, 0.2, 1.0]:
        for steps in [1, 10, 100, 1000, 10000]:
            for delta in [1e-5, 1e-7]:
                e = event(q, sigma, steps, 0, 0)
                cases.append(dict(sigma=sigma, q=q, steps=steps, delta=delta, release=0, release_sigma=0,
                                  epsilon=rdp_epsilon(e, delta)))
# The statistics release composed with training, and the PLD reference on a few cases.
for sigma, q, steps, release_sigma in [(1.0, 0.01, 1000, 5.0), (0.8, 0.05, 500, 10.0), (1.5, 0.2, 200, 3.0)]:
    e = event(q, sigma, steps, 1, release_sigma)
    cases.append(dict(sigma=sigma, q=q, steps=steps, delta=1e-5, release=1, release_sigma=release_sigma,
                      epsilon=rdp_epsilon(e, 1e-5), pld_epsilon=pld_epsilon(e, 1e-5)))

calibration = []
for target, q, steps in [(1.0, 0.01, 1000), (2.0, 0.01, 1000), (4.0, 0.05, 2000), (8.0, 0.05, 2000), (8.0, 0.2, 600)]:
    def make(sigma, q=q, steps=steps):
        return event(q, sigma, steps, 0, 0)
    sigma = dp_accounting.calibrate_dp_mechanism(
        rdp_privacy_accountant.RdpAccountant, make, target, 1e-5, bracket_interval=dp_accounting.LowerEndpointAndGuess(0.3, 1.0),
        tol=1e-6)
    calibration.append(dict(epsilon=target, delta=1e-5, q=q, steps=steps, sigma=sigma))

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "dp_accounting.json")
with open(out, "w") as f:
    json.dump(dict(source="dp-accounting 0.6.0, RdpAccountant() at its default orders", cases=cases,
                   calibration=calibration), f, indent=1)
print(f"{len(cases)} cases, {len(calibration)} calibrations -> {out}")
