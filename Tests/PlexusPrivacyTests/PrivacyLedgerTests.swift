import Foundation
import PlexusPrivacy
import Testing

@Suite struct PrivacyLedgerTests {
    func ledger(budget: Double = 2, statistics: Double? = 8) -> PrivacyLedger {
        PrivacyLedger(samplingRate: 0.01, noiseMultiplier: 1.1, statisticsNoiseMultiplier: statistics, delta: 1e-5, budget: budget)
    }

    /// The budget stop: steps are recorded up to the last one that fits, then refused, and ε
    /// never exceeds the budget.
    @Test func stepsStopAtTheBudget() {
        var l = ledger()
        let released = l.recordStatisticsRelease()
        #expect(released)
        let remaining = l.remainingSteps
        #expect(remaining > 100 && remaining < 1_000_000, "\(remaining)")
        let recorded = l.record(steps: remaining)
        #expect(recorded)
        #expect(l.epsilon <= 2 && l.epsilon > 1.9, "\(l.epsilon)")
        #expect(!l.allows(steps: 1))
        let before = l
        let refused = !l.record(steps: 1)
        #expect(refused)
        #expect(l == before, "a refused step records nothing")
        #expect(l.remainingSteps == 0)
    }

    /// Step by step or all at once: the same count, the same ε (identical steps compose exactly).
    @Test func stepByStepEqualsAllAtOnce() {
        var a = ledger(budget: .infinity), b = ledger(budget: .infinity)
        for _ in 0..<250 { a.record(steps: 1) }
        b.record(steps: 250)
        #expect(a == b && a.epsilon == b.epsilon)
        let curve = RDPCurve.sampledGaussian(samplingRate: 0.01, noiseMultiplier: 1.1).composed(250)
        #expect(a.epsilon == curve.epsilon(delta: 1e-5).epsilon)
    }

    @Test func theStatisticsAreReleasedOnceAndCharged() {
        var l = ledger()
        let before = l.epsilon
        #expect(before == 0)
        let first = l.recordStatisticsRelease()
        #expect(first)
        let after = l.epsilon
        let release = RDPCurve.sampledGaussian(samplingRate: 1, noiseMultiplier: 8).epsilon(delta: 1e-5).epsilon
        #expect(abs(after - release) < 1e-12)
        let second = l.recordStatisticsRelease()
        #expect(!second, "a second release")
        #expect(l.epsilon == after)
        var none = ledger(statistics: nil)
        let withoutStatistics = none.recordStatisticsRelease()
        #expect(!withoutStatistics)
        // A release that alone overruns the budget is refused.
        var tight = ledger(budget: 0.1, statistics: 2)
        let overrun = tight.recordStatisticsRelease()
        #expect(!overrun && !tight.statisticsReleased)
    }

    /// A restart: the ledger from the state file spends what the old one had spent.
    @Test func aDecodedLedgerKeepsItsSpending() throws {
        var l = ledger()
        l.recordStatisticsRelease()
        l.record(steps: 1234)
        let data = try JSONEncoder().encode(l)
        let back = try JSONDecoder().decode(PrivacyLedger.self, from: data)
        #expect(back == l && back.epsilon == l.epsilon)
        #expect(!String(decoding: data, as: UTF8.self).contains("values"), "counts are stored, not curves")
    }

    @Test(arguments: [
        #"{"sampling":0,"noise_multiplier":1,"delta":1e-5,"budget":1,"steps":0,"statistics_released":false}"#,
        #"{"sampling":0.1,"noise_multiplier":-1,"delta":1e-5,"budget":1,"steps":0,"statistics_released":false}"#,
        #"{"sampling":0.1,"noise_multiplier":1,"delta":1,"budget":1,"steps":0,"statistics_released":false}"#,
        #"{"sampling":0.1,"noise_multiplier":1,"delta":1e-5,"budget":1,"steps":-3,"statistics_released":false}"#,
        #"{"sampling":0.1,"noise_multiplier":1,"delta":1e-5,"budget":1,"steps":3,"statistics_released":true}"#,
        #"{"sampling":0.1,"noise_multiplier":1,"delta":1e-5,"budget":0,"steps":3,"statistics_released":false}"#,
    ])
    func outOfRangeLedgersAreRefused(json: String) {
        #expect(throws: DecodingError.self) { try JSONDecoder().decode(PrivacyLedger.self, from: Data(json.utf8)) }
    }
}
