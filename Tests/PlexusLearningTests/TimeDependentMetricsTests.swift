import Foundation
import PlexusCore
import PlexusLearning
import Testing

/// Uno's C, the cumulative/dynamic AUC and the (integrated) Brier score against scikit-survival
/// on gbsg2 (Fixtures/survival_metrics.json, from make_survival_metric_fixtures.py): the same
/// inputs, the same numbers.
@Suite struct TimeDependentMetricsTests {
    @Test func gbsg2AgainstScikitSurvival() throws {
        let f = try TestData.json("survival_metrics.json")
        func doubles(_ key: String) throws -> [Double] { try #require(f[key] as? [Double], "\(key)") }
        let trainTimes = try doubles("train_times")
        let trainEvents = try doubles("train_events").map { Float($0) }
        let times = try doubles("test_times")
        let events = try doubles("test_events").map { Float($0) }
        let scores = try doubles("scores")
        let horizons = try doubles("times")
        let survival = try #require(f["survival"] as? [[Double]])
        let weights = CensoringWeights(trainTimes: trainTimes, trainEvents: trainEvents)
        func close(_ a: Double?, _ key: String, _ tolerance: Double = 1e-9) {
            let b = double(f, key)
            #expect(a.map { abs($0 - b) <= tolerance } == true, "\(key): \(a.map { "\($0)" } ?? "nil") vs scikit-survival \(b)")
        }
        close(weights.unoConcordance(times: times, events: events, scores: scores), "uno")
        close(weights.unoConcordance(times: times, events: events, scores: scores, tau: double(f, "uno_tau")), "uno_truncated")
        let auc = try #require(weights.cumulativeDynamicAUC(times: times, events: events, scores: scores, at: horizons))
        let refAUC = try doubles("auc")
        #expect(zip(auc.auc, refAUC).allSatisfy { abs($0 - $1) <= 1e-9 }, "AUC \(auc.auc) vs \(refAUC)")
        close(auc.mean, "mean_auc")
        let brier = try #require(weights.brierScores(times: times, events: events, survival: survival, at: horizons))
        let refBrier = try doubles("brier")
        #expect(zip(brier, refBrier).allSatisfy { abs($0 - $1) <= 1e-9 }, "Brier \(brier) vs \(refBrier)")
        close(weights.integratedBrierScore(times: times, events: events, survival: survival, at: horizons), "ibs")
        // Calibration by risk decile at every horizon against lifelines' Kaplan–Meier per group.
        let calibration = try #require(f["calibration"] as? [[[String: Any]]])
        for (k, t) in horizons.enumerated() {
            let groups = Calibration.atHorizon(t, times: times, events: events, predicted: survival.map { $0[k] })
            #expect(groups.count == calibration[k].count, "horizon \(t)")
            for (ours, ref) in zip(groups, calibration[k]) {
                #expect(ours.rows == Int(double(ref, "rows")), "horizon \(t) group rows")
                #expect(abs(ours.predicted - double(ref, "predicted")) <= 1e-12, "horizon \(t) predicted")
                #expect(abs(ours.observed - double(ref, "observed")) <= 1e-12, "horizon \(t) observed \(ours.observed) vs \(double(ref, "observed"))")
            }
        }
        // Harrell's C of the same scores is the existing metric's.
        let harrell = SurvivalMetrics.concordance(times: times, scores: scores.map { -$0 }, events: events).index
        #expect(abs(harrell - double(f, "harrell")) <= 1e-12, "Harrell \(harrell)")
        print("gbsg2 seed 0 vs scikit-survival: Uno \(weights.unoConcordance(times: times, events: events, scores: scores)!) (ref \(double(f, "uno"))), mean AUC \(auc.mean) (ref \(double(f, "mean_auc"))), IBS \(weights.integratedBrierScore(times: times, events: events, survival: survival, at: horizons)!) (ref \(double(f, "ibs")))")
    }

    /// `plexus train` with horizons: Plexus' own Cox fit (Efron, l2 0.01) on gbsg2 seed 0, its test
    /// rows scored with the Breslow baseline of its training rows, against scikit-survival's
    /// numbers for lifelines' fit of the same rows — within 1e-3.
    @Test func trainReportsTimeDependentMetrics() throws {
        let f = try TestData.json("survival_metrics.json")
        var options = TrainingOptions(dataPath: TestData.path("gbsg2.csv"), plan: .cox(l2: 0.01, ties: .efron))
        options.splitPath = TestData.path("splits/gbsg2_seed0.json")
        options.horizons = try #require(f["times"] as? [Double])
        options.bootstrap = 200
        let run = try Trainer.run(options)
        let interval = try #require(run.concordanceInterval)
        #expect(interval.resamples == 200 && interval.lower < 0.6592 && interval.upper > 0.6592)
        #expect(abs(interval.estimate - (run.test?.survival?.concordance ?? .nan)) <= 1e-12)
        let report = try #require(run.timeDependent)
        #expect(report.rows == "test")
        let uno = try #require(report.uno)
        let mean = try #require(report.meanAUC)
        let ibs = try #require(report.integratedBrier)
        print("plexus train gbsg2 seed 0: Uno \(uno) (sksurv on lifelines' fit \(double(f, "uno"))), mean AUC \(mean) (\(double(f, "mean_auc"))), IBS \(ibs) (\(double(f, "ibs")))")
        #expect(abs(uno - double(f, "uno")) <= 1e-3)
        #expect(abs(mean - double(f, "mean_auc")) <= 1e-3)
        #expect(abs(ibs - double(f, "ibs")) <= 1e-3)
        let auc = try #require(report.auc)
        let refAUC = try #require(f["auc"] as? [Double])
        #expect(zip(auc, refAUC).allSatisfy { abs($0 - $1) <= 1e-3 }, "\(auc) vs \(refAUC)")
    }

    /// Hand-checked small cases: no censoring makes G = 1 (Uno = Harrell); a perfect score has AUC 1.
    @Test func smallCases() throws {
        let times: [Double] = [1, 2, 3, 4, 5]
        let events: [Float] = [1, 1, 1, 1, 1]
        let weights = CensoringWeights(trainTimes: times, trainEvents: events)
        #expect(weights.censoring.value(at: 3) == 1)
        #expect(weights.unoConcordance(times: times, events: events, scores: [5, 4, 3, 2, 1]) == 1)
        #expect(weights.unoConcordance(times: times, events: events, scores: [1, 2, 3, 4, 5]) == 0)
        #expect(weights.unoConcordance(times: times, events: events, scores: [1, 1, 1, 1, 1]) == 0.5)
        #expect(weights.cumulativeDynamicAUC(times: times, events: events, scores: [5, 4, 3, 2, 1], at: [2.5])?.auc == [1])
        // Reverse KM by hand: times 1(event) 2(censored) 3(censored) 4(event): G(2) = 1 − 1/3, G(3) = G(2)·(1 − 1/2).
        let g = KaplanMeier(times: [1, 2, 3, 4], events: [1, 0, 0, 1], reverse: true)
        #expect(abs(g.value(at: 2.5) - 2.0 / 3) <= 1e-15 && abs(g.value(at: 3) - 1.0 / 3) <= 1e-15 && g.value(at: 0.5) == 1)
        // No comparable pair: nil rather than 0/0.
        #expect(weights.unoConcordance(times: [1], events: [1], scores: [0]) == nil)
    }
}

/// The bootstrap interval of Harrell's C.
@Suite struct BootstrapIntervalTests {
    /// gbsg2 seed 0's test rows scored by Plexus' Cox fit: a function of the seed, around the
    /// estimate, as wide as 138 rows allow (the normal approximation from the C-index's
    /// variance under 60 events puts the half-width near 0.07).
    @Test func gbsg2TestRows() throws {
        let table = try TestData.table("gbsg2.csv")
        let split = try TestData.split("gbsg2", seed: 0)
        let train = try DatasetLoader.load(table, plan: .cox(ties: .efron), rows: split.train).dataset
        let test = try DatasetLoader.load(table, plan: .cox(ties: .efron), rows: split.test).dataset
        let (trained, _) = Trainer.fit(train, plan: .cox(l2: 0.01, ties: .efron))
        let risks = trained.model.predict(parameters: trained.parameters, batch: trained.standardization.applied(to: test)).map(Double.init)
        let a = try #require(BootstrapInterval.concordance(times: test.times, events: test.events, risks: risks, resamples: 1000, seed: 7))
        let b = try #require(BootstrapInterval.concordance(times: test.times, events: test.events, risks: risks, resamples: 1000, seed: 7))
        let c = try #require(BootstrapInterval.concordance(times: test.times, events: test.events, risks: risks, resamples: 1000, seed: 8))
        #expect(a == b && a != c)
        #expect(abs(a.estimate - 0.6591753343239227) <= 1e-3)
        #expect(a.lower < a.estimate && a.estimate < a.upper && a.skipped == 0)
        let half = (a.upper - a.lower) / 2
        print("gbsg2 seed 0 test C-index \(a.estimate), bootstrap 95% [\(a.lower), \(a.upper)]")
        #expect(half > 0.04 && half < 0.1, "half-width \(half)")
    }

    @Test func degenerateCases() throws {
        // Identical scores: every resample's C is 0.5.
        let times: [Double] = [1, 2, 3, 4, 5, 6]
        let events: [Float] = [1, 0, 1, 1, 0, 1]
        let flat = try #require(BootstrapInterval.concordance(times: times, events: events, risks: [Double](repeating: 2, count: 6), resamples: 200, seed: 1))
        #expect(flat.lower == 0.5 && flat.upper == 0.5 && flat.estimate == 0.5)
        // One event at the last time: no comparable pair at all.
        #expect(BootstrapInterval.concordance(times: [1, 2, 3], events: [0, 0, 1], risks: [1, 2, 3], resamples: 50, seed: 1) == nil)
        // One early event among censored rows: resamples that miss it have no pair and are counted.
        let sparse = try #require(BootstrapInterval.concordance(times: times, events: [1, 0, 0, 0, 0, 0], risks: [6, 5, 4, 3, 2, 1], resamples: 500, seed: 2))
        #expect(sparse.skipped > 0 && sparse.skipped < 500 && sparse.lower == 1 && sparse.upper == 1)
    }
}
