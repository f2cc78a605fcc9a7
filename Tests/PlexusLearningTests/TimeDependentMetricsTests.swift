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
        let report = try #require(try Trainer.run(options).timeDependent)
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
