import PlexusCore
import PlexusCrypto
import PlexusEngine
import PlexusGossip
import PlexusLearning
import Testing

/// The statistics round under `[plan.privacy.bounds]`: the Gaussian release of one joint sum of
/// sensitivity 1 (``ReleasedStatistics``), its noise, and its post-processing into the pooled
/// standardization, the same in the simulator and on every node.
@Suite struct StatisticsReleaseTests {
    static let bounds = [
        Plan.FeatureBound(name: "age", lower: 18, upper: 100), Plan.FeatureBound(name: "size", lower: 0, upper: 10),
        Plan.FeatureBound(name: "grade", lower: 1, upper: 3),
    ]

    static func rows(_ values: [[Float]]) -> Dataset {
        Dataset(featureNames: ["age", "size", "grade"], features: values.flatMap { $0 }, labels: values.map { _ in 0 })
    }

    /// What one row adds to the released vector, v(x) = (γ₁u, γ₂(u² − ½)).
    static func contribution(_ row: [Float]) -> [Double] {
        var zero = ZeroNoise()
        let one = ReleasedStatistics(releasing: rows([row]), bounds: bounds, noiseMultiplier: 1e-300, generator: &zero)
        let (g1, g2) = ReleasedStatistics.weights(dimension: 3)
        return one.sums.map { $0 * g1 } + one.centredSquares.map { $0 * g2 }
    }

    /// A generator of zeros: the Box–Muller draw is then a fixed finite value, scaled by σ_s ≈ 0.
    struct ZeroNoise: RandomNumberGenerator { mutating func next() -> UInt64 { 0 } }

    /// ‖v(x)‖ ≤ 1 for every row, whatever its values (clipped to the bounds first); the corners
    /// of the box reach 1, so the bound is tight and the noise is not larger than it must be.
    @Test func oneRowMovesTheReleaseByAtMostOne() {
        var rng = SplitMix64(seed: 7)
        var largest = 0.0
        for _ in 0..<5000 {
            let row = (0..<3).map { _ in Float(Double(rng.next() % 20_000) / 50 - 100) }  // −100 … 300: often out of bounds
            let norm = Self.contribution(row).map { $0 * $0 }.reduce(0, +).squareRoot()
            largest = max(largest, norm)
            #expect(norm <= 1 + 1e-12, "\(row): \(norm)")
        }
        let corner = Self.contribution([18, 10, 3]).map { $0 * $0 }.reduce(0, +).squareRoot()
        #expect(abs(corner - 1) < 1e-12 && largest > 0.99, "corner \(corner), largest seen \(largest)")
        // NaN is the midpoint (u = 0), never a NaN in the sum.
        let missing = Self.contribution([.nan, 5, 2])
        #expect(missing.allSatisfy { $0.isFinite } && abs(missing[0]) < 1e-200)
    }

    /// Each coordinate gets N(0, σ_s²) on the γ-scaled sum: Σu carries σ_s ÷ γ₁ in natural units,
    /// Σ(u² − ½) σ_s ÷ γ₂ (checked over 4000 releases to 5%), with mean 0.
    @Test func theNoiseHasTheCalibratedScale() {
        let data = Self.rows([[40, 2, 1], [70, 8, 3], [55, 5, 2]])
        var zero = ZeroNoise()
        let exact = ReleasedStatistics(releasing: data, bounds: Self.bounds, noiseMultiplier: 1e-300, generator: &zero)
        let generator = DeterministicNoiseGenerator(label: "statistics-release-test")
        var g = generator
        let sigma = 2.0
        var sums = [Double](repeating: 0, count: 6), squares = sums
        let trials = 4000
        for _ in 0..<trials {
            let r = ReleasedStatistics(releasing: data, bounds: Self.bounds, noiseMultiplier: sigma, generator: &g)
            #expect(r.count == 3)
            let noise = zip(r.sums, exact.sums).map { $0 - $1 } + zip(r.centredSquares, exact.centredSquares).map { $0 - $1 }
            for i in 0..<6 { sums[i] += noise[i]; squares[i] += noise[i] * noise[i] }
        }
        let (g1, g2) = ReleasedStatistics.weights(dimension: 3)
        for i in 0..<6 {
            let expected = sigma / (i < 3 ? g1 : g2)
            let sd = (squares[i] / Double(trials)).squareRoot()
            #expect(abs(sd / expected - 1) < 0.05, "coordinate \(i): sd \(sd) vs \(expected)")
            #expect(abs(sums[i] / Double(trials)) < 4 * expected / Double(trials).squareRoot(), "coordinate \(i): mean \(sums[i] / Double(trials))")
        }
    }

    /// With (almost) no noise the post-processing gives the exact z-score of the clipped rows,
    /// and pooling adds the sites' sums: two sites pooled = one site holding both.
    @Test func withoutNoiseTheStandardizationIsExact() {
        let a = Self.rows([[40, 2, 1], [70, 8, 3], [55, 5, 2], [30, 1, 1]])
        let b = Self.rows([[90, 9, 3], [20, 0.5, 1], [65, 4, 2]])
        var zero = ZeroNoise()
        let ra = ReleasedStatistics(releasing: a, bounds: Self.bounds, noiseMultiplier: 1e-300, generator: &zero)
        let rb = ReleasedStatistics(releasing: b, bounds: Self.bounds, noiseMultiplier: 1e-300, generator: &zero)
        let pooled = ReleasedStatistics.pooled(["a": ra, "b": rb], dimension: 3).standardization(bounds: Self.bounds)
        let both = Self.rows([[40, 2, 1], [70, 8, 3], [55, 5, 2], [30, 1, 1], [90, 9, 3], [20, 0.5, 1], [65, 4, 2]])
        let exact = Standardization(fitting: both)
        for j in 0..<3 {
            #expect(abs(pooled.mean[j] - exact.mean[j]) < 1e-9 * max(1, abs(exact.mean[j])), "mean \(j)")
            #expect(abs(pooled.scale[j] - exact.scale[j]) < 1e-9 * exact.scale[j], "scale \(j)")
        }
        // A site the sample basis counts twice weighs twice, its means unchanged.
        let twice = ra.declaring(count: 8)
        #expect(twice.count == 8 && zip(twice.sums, ra.sums).allSatisfy { abs($0 - 2 * $1) < 1e-12 })
    }

    /// Noise large against the rows cannot give a mean outside the bounds or a scale outside
    /// [h·√0.01, h]: the clamps keep the standardization usable and finite.
    @Test func aNoisyReleaseStaysWithinTheBounds() {
        var g = DeterministicNoiseGenerator(label: "statistics-release-clamps")
        let data = Self.rows([[40, 2, 1], [70, 8, 3]])
        for _ in 0..<500 {
            let s = ReleasedStatistics(releasing: data, bounds: Self.bounds, noiseMultiplier: 50, generator: &g).standardization(bounds: Self.bounds)
            for (j, bound) in Self.bounds.enumerated() {
                let h = (bound.upper - bound.lower) / 2
                #expect(s.mean[j] >= bound.lower && s.mean[j] <= bound.upper)
                #expect(s.scale[j] >= h * 0.1 - 1e-12 && s.scale[j] <= h + 1e-12)
            }
        }
    }

    /// The wire: a release travels as a version-2 summary and decodes to the same numbers; under
    /// a private plan the pooling refuses exact statistics (and the other way round), and a
    /// site's features must all be bounded.
    @Test func theReleaseTravelsAndThePlanDecidesWhichKindIsTaken() throws {
        var plan = Plan(model: .logistic, rounds: 2, learningRate: 0.1)
        plan.label = "y"
        plan.privacy = Plan.Privacy(delta: 1e-5, clip: 1, sampling: 0.1, noise: .epsilon(8), bounds: Self.bounds)
        let site = Self.rows([[40, 2, 1], [70, 8, 3], [55, 5, 2]])
        let summary = try Experiment.siteSummary(site, plan: plan, noise: .deterministic(label: "wire"))
        let bytes = summary.encoded()
        #expect(bytes[4] == 2)
        let decoded = try SiteSummary(decoding: bytes)
        #expect(decoded == summary && decoded.release != nil && decoded.statistics.count == 3)
        // The same label gives the same release (the simulator and a node under the test flag).
        #expect(try Experiment.siteSummary(site, plan: plan, noise: .deterministic(label: "wire")) == summary)
        #expect(try Experiment.siteSummary(site, plan: plan, noise: .deterministic(label: "other")) != summary)
        let a = PeerID("a")!, b = PeerID("b")!
        let basis = SampleBasis(declared: [a: 3, b: 3], pins: [:], ratio: 4, graph: [a: [b], b: [a]])
        let exact = SiteSummary(site, plan: plan)
        #expect(throws: ExperimentError.self) { try Experiment.pooledStandardization([a: summary, b: exact], counts: basis, plan: plan) }
        var plain = plan
        plain.privacy = nil
        #expect(throws: ExperimentError.self) { try Experiment.pooledStandardization([a: summary, b: summary], counts: basis, plan: plain) }
        let pooled = try Experiment.pooledStandardization([a: summary, b: summary], counts: basis, plan: plan)
        #expect(pooled.mean.count == 3 && pooled.scale.allSatisfy { $0 > 0 })
        let unbounded = Dataset(featureNames: ["age", "weight", "grade"], features: [40, 2, 1], labels: [0])
        #expect(throws: ExperimentError.self) { try Experiment.siteSummary(unbounded, plan: plan, noise: .deterministic(label: "x")) }
        // A hostile release: infinite or huge sums are refused at decoding.
        var hostile = bytes
        let last = hostile.count - 8
        hostile.replaceSubrange(last..<hostile.count, with: withUnsafeBytes(of: Double.infinity.bitPattern.littleEndian) { Array($0) })
        #expect(throws: SiteSummary.Error.self) { try SiteSummary(decoding: hostile) }
    }
}
