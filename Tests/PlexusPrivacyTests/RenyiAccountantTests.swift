import Foundation
import PlexusPrivacy
import Testing

/// The Rényi accountant against Google's dp-accounting (0.6.0, its RDP accountant at its default
/// orders): `Fixtures/dp_accounting.json`, written by `Fixtures/make_fixtures.py`.
@Suite struct RenyiAccountantTests {
    struct Fixture: Decodable {
        struct Case: Decodable {
            var sigma: Double, q: Double, steps: Int, delta: Double, release: Int, release_sigma: Double, epsilon: Double
            var pld_epsilon: Double?
        }
        struct Calibration: Decodable { var epsilon: Double, delta: Double, q: Double, steps: Int, sigma: Double }
        var cases: [Case]
        var calibration: [Calibration]
    }

    static let fixture: Fixture = {
        let url = Bundle.module.url(forResource: "Fixtures/dp_accounting", withExtension: "json")!
        return try! JSONDecoder().decode(Fixture.self, from: Data(contentsOf: url))
    }()

    func curve(_ c: Fixture.Case) -> RDPCurve {
        var curve = RDPCurve.sampledGaussian(samplingRate: c.q, noiseMultiplier: c.sigma).composed(c.steps)
        if c.release > 0 { curve += RDPCurve.sampledGaussian(samplingRate: 1, noiseMultiplier: c.release_sigma).composed(c.release) }
        return curve
    }

    /// Every case of the grid (σ 0.5–5, q 0.001–1, 1–10⁴ steps, δ 10⁻⁵ and 10⁻⁷, and three runs
    /// with a statistics release) within 10⁻⁶ relative of dp-accounting (the issue asks for 1%;
    /// the two compute the same bound at the same orders, so they agree to rounding: 2·10⁻¹¹).
    @Test func matchesDPAccountingOverTheGrid() {
        let cases = Self.fixture.cases
        #expect(cases.count == 303)
        var worst = (error: 0.0, label: "")
        for c in cases {
            let ours = curve(c).epsilon(delta: c.delta).epsilon
            let error = abs(ours - c.epsilon) / c.epsilon
            if error > worst.error { worst = (error, "σ \(c.sigma) q \(c.q) steps \(c.steps) δ \(c.delta): \(ours) vs \(c.epsilon)") }
            #expect(error <= 1e-6, "σ \(c.sigma) q \(c.q) steps \(c.steps) δ \(c.delta) release \(c.release): ε \(ours) vs dp-accounting \(c.epsilon)")
        }
        print("renyi-accountant: largest relative difference from dp-accounting over \(cases.count) cases: \(worst.error) (\(worst.label))")
    }

    /// The RDP bound is an upper bound: never below the PLD accountant's (tighter) ε.
    @Test func neverBelowThePLDAccountant() {
        let withPLD = Self.fixture.cases.filter { $0.pld_epsilon != nil }
        #expect(withPLD.count == 3)
        for c in withPLD { #expect(curve(c).epsilon(delta: c.delta).epsilon >= c.pld_epsilon!) }
    }

    @Test func calibrationMatchesDPAccounting() throws {
        for c in Self.fixture.calibration {
            let sigma = try #require(NoiseCalibration.noiseMultiplier(epsilon: c.epsilon, delta: c.delta, samplingRate: c.q, steps: c.steps))
            #expect(abs(sigma - c.sigma) / c.sigma <= 0.01, "ε \(c.epsilon) q \(c.q) steps \(c.steps): σ \(sigma) vs \(c.sigma)")
            // The calibrated σ spends at most the target, and 1% less noise would overspend.
            let spent = RDPCurve.sampledGaussian(samplingRate: c.q, noiseMultiplier: sigma).composed(c.steps).epsilon(delta: c.delta).epsilon
            #expect(spent <= c.epsilon * (1 + 1e-9))
            let less = RDPCurve.sampledGaussian(samplingRate: c.q, noiseMultiplier: sigma * 0.99).composed(c.steps).epsilon(delta: c.delta).epsilon
            #expect(less > c.epsilon)
        }
    }

    @Test func aReleaseThatAloneOverspendsHasNoNoiseMultiplier() {
        let release = RDPCurve.sampledGaussian(samplingRate: 1, noiseMultiplier: 0.5)  // ε ≈ 20 at δ 1e-5
        #expect(release.epsilon(delta: 1e-5).epsilon > 4)
        #expect(NoiseCalibration.noiseMultiplier(epsilon: 4, delta: 1e-5, samplingRate: 0.01, steps: 100, fixed: release) == nil)
    }

    // MARK: Composition

    @Test func compositionAddsOrderByOrder() {
        let one = RDPCurve.sampledGaussian(samplingRate: 0.05, noiseMultiplier: 1.1)
        let ten = one.composed(10)
        var sum = RDPCurve()
        for _ in 0..<10 { sum += one }
        for (a, b) in zip(ten.values, sum.values) { #expect(abs(a - b) <= 1e-12 * max(1, abs(a))) }
        #expect(one.composed(0) == RDPCurve())
        #expect(RDPCurve().epsilon(delta: 1e-5).epsilon == 0)
        // More steps, more noise-free releases, smaller δ: each spends more.
        #expect(ten.epsilon(delta: 1e-5).epsilon > one.epsilon(delta: 1e-5).epsilon)
        #expect(ten.epsilon(delta: 1e-7).epsilon > ten.epsilon(delta: 1e-5).epsilon)
    }

    /// The plain Gaussian mechanism (q = 1) has ε(α) = α ÷ 2σ² exactly, and sampling only helps.
    @Test func fullBatchIsThePlainGaussianAndSamplingAmplifies() {
        let sigma = 1.3
        let full = RDPCurve.sampledGaussian(samplingRate: 1, noiseMultiplier: sigma)
        for (alpha, value) in zip(full.orders, full.values) { #expect(value == alpha / (2 * sigma * sigma)) }
        var previous = 0.0
        for q in [0.001, 0.01, 0.1, 0.5] {
            let e = RDPCurve.sampledGaussian(samplingRate: q, noiseMultiplier: sigma).epsilon(delta: 1e-5).epsilon
            #expect(e > previous && e < full.epsilon(delta: 1e-5).epsilon)
            previous = e
        }
        #expect(RDPCurve.sampledGaussian(samplingRate: 0, noiseMultiplier: sigma).values.allSatisfy { $0 == 0 })
    }

    /// At integer orders the fractional series and the exact binomial sum are the same moment.
    @Test func integerAndFractionalFormulasAgree() {
        for (q, sigma) in [(0.01, 1.0), (0.1, 2.0), (0.3, 0.9)] {
            for alpha in [2.0, 3.0, 8.0, 20.0] {
                let exact = RDPCurve.sampledGaussian(samplingRate: q, noiseMultiplier: sigma, orders: [alpha]).values[0]
                let nudged = RDPCurve.sampledGaussian(samplingRate: q, noiseMultiplier: sigma, orders: [alpha + 1e-9]).values[0]
                #expect(abs(exact - nudged) <= 1e-6 * max(exact, 1e-12), "q \(q) σ \(sigma) α \(alpha): \(exact) vs \(nudged)")
            }
        }
    }
}
