import Foundation
import PlexusLearning
import Testing

/// Metrics against values computed by scikit-learn 1.9.1 and lifelines 0.30.3
/// (Fixtures/metrics.json, made by Fixtures/make_fixtures.py).
@Suite struct MetricsTests {
    nonisolated(unsafe) static let fixture: [String: Any] = (try? TestData.json("metrics.json")) ?? [:]
    nonisolated(unsafe) static let classification = (fixture["classification"] as? [[String: Any]]) ?? []
    nonisolated(unsafe) static let concordance = (fixture["concordance"] as? [[String: Any]]) ?? []

    @Test func fixturesLoaded() {
        #expect(Self.classification.count == 4)
        #expect(Self.concordance.count == 4)
    }

    @Test(arguments: 0..<4)
    func classificationMatchesScikitLearn(index: Int) throws {
        let case_ = try #require(Self.classification.indices.contains(index) ? Self.classification[index] : nil)
        let labels = (case_["labels"] as! [NSNumber]).map { $0.floatValue }
        let p = (case_["probabilities"] as! [NSNumber]).map { $0.doubleValue }
        let m = ClassificationMetrics(labels: labels, probabilities: p)
        let name = case_["name"] as! String
        for (key, ours) in [
            ("accuracy", m.accuracy), ("precision", m.precision), ("recall", m.recall), ("f1", m.f1), ("auc", m.rocAUC),
            ("logloss", m.logLoss),
        ] {
            let expected = double(case_, key)
            #expect(abs(ours - expected) <= 1e-12 * max(1, abs(expected)), "\(name) \(key): \(ours) vs \(expected)")
        }
    }

    @Test(arguments: 0..<4)
    func concordanceMatchesLifelines(index: Int) throws {
        let case_ = try #require(Self.concordance.indices.contains(index) ? Self.concordance[index] : nil)
        let times = (case_["times"] as! [NSNumber]).map { $0.doubleValue }
        let scores = (case_["scores"] as! [NSNumber]).map { $0.doubleValue }
        let events = (case_["events"] as! [NSNumber]).map { $0.floatValue }
        let c = SurvivalMetrics.concordance(times: times, scores: scores, events: events)
        let expected = double(case_, "cindex")
        #expect(abs(c.index - expected) <= 1e-12, "\(case_["name"]!): \(c.index) vs \(expected)")
        // The same result from a direct O(n²) count of lifelines' comparable pairs.
        var concordant = 0.0
        var pairs = 0
        for i in times.indices where events[i] == 1 {
            for j in times.indices where times[i] < times[j] || (times[i] == times[j] && events[j] == 0 && i != j) {
                pairs += 1
                concordant += scores[i] < scores[j] ? 1 : (scores[i] == scores[j] ? 0.5 : 0)
            }
        }
        #expect(pairs == c.pairs)
        #expect(abs(concordant / Double(pairs) - expected) <= 1e-12)
    }

    @Test func survivalMetricsUseNegatedRisk() {
        // Higher risk, earlier event: perfectly concordant.
        let m = SurvivalMetrics(times: [1, 2, 3, 4], events: [1, 1, 1, 0], risks: [4, 3, 2, 1])
        #expect(m.concordance == 1)
        #expect(m.comparablePairs == 6)
        #expect(m.events == 3)
    }

    @Test func aucEdgeCases() {
        #expect(ClassificationMetrics.rocAUC(labels: [1, 1], scores: [0.2, 0.3]).isNaN)
        #expect(ClassificationMetrics.rocAUC(labels: [0, 1, 0, 1], scores: [0.5, 0.5, 0.5, 0.5]) == 0.5)
        #expect(ClassificationMetrics.rocAUC(labels: [0, 0, 1, 1], scores: [0.1, 0.2, 0.3, 0.4]) == 1)
    }
}
