import Foundation
import PlexusCore
import PlexusTopology
import Testing

/// The `[plan.privacy]` table: both TOML forms, diagnostics with exact text, the writer round
/// trip and the plan hash.
@Suite struct PrivacyPlanTests {
    static let base = "[plan]\nmodel = \"logistic\"\nlabel = \"y\"\nrounds = 10\nlearning_rate = 0.5\n"

    static func diagnostics(_ source: String) -> [String] {
        do {
            return try PlanFile.parse(source: source, path: "p.toml").warnings.map(\.description)
        } catch {
            return error.diagnostics.map(\.description)
        }
    }

    @Test func headerAndInlineFormsAreOnePlan() throws {
        let header = Self.base + "\n[plan.privacy]\ndelta = 1e-5\nclip = 1.0\nsampling = 0.05\nepsilon = 8\n"
        let inline = Self.base + "privacy = { epsilon = 8.0, sampling = 5e-2, clip = 1, delta = 0.00001 }\n"
        let a = try PlanFile.parse(source: header, path: "p.toml")
        let b = try PlanFile.parse(source: inline, path: "p.toml")
        #expect(a.warnings.isEmpty && b.warnings.isEmpty)
        #expect(a.plan.privacy == Plan.Privacy(delta: 1e-5, clip: 1, sampling: 0.05, noise: .epsilon(8)))
        #expect(a.plan == b.plan && PlanHash.hash(a.plan) == PlanHash.hash(b.plan))
        let sigma = try PlanFile.parse(source: Self.base + "\n[plan.privacy]\ndelta = 1e-5\nclip = 2\nsampling = 1\nnoise_multiplier = 1.5\n", path: "p.toml").plan
        #expect(sigma.privacy?.noise == .multiplier(1.5) && sigma.privacy?.sampling == 1)
    }

    /// The hash covers every privacy key, and a plan without the table hashes as before.
    @Test func theHashCoversEveryKey() throws {
        let plain = try PlanFile.parse(source: Self.base, path: "p.toml").plan
        #expect(plain.privacy == nil)
        var hashes: Set<[UInt8]> = [PlanHash.hash(plain)]
        let variants: [Plan.Privacy] = [
            .init(delta: 1e-5, clip: 1, sampling: 0.05, noise: .epsilon(8)),
            .init(delta: 1e-6, clip: 1, sampling: 0.05, noise: .epsilon(8)),
            .init(delta: 1e-5, clip: 2, sampling: 0.05, noise: .epsilon(8)),
            .init(delta: 1e-5, clip: 1, sampling: 0.1, noise: .epsilon(8)),
            .init(delta: 1e-5, clip: 1, sampling: 0.05, noise: .epsilon(4)),
            .init(delta: 1e-5, clip: 1, sampling: 0.05, noise: .multiplier(8)),
            .init(delta: 1e-5, clip: 1, sampling: 0.05, noise: .multiplier(8), stratumSize: 4),
        ]
        for v in variants {
            var p = plain
            p.privacy = v
            hashes.insert(PlanHash.hash(p))
            // The writer's text parses back to the same plan.
            let text = TopologyWriter.plan(p)
            #expect(text.contains("privacy = {"), "\(text)")
            let back = try PlanFile.parse(source: text, path: "w.toml").plan
            #expect(back == p, "\(text)")
        }
        #expect(hashes.count == variants.count + 1)
    }

    @Test(arguments: [
        ("\n[plan.privacy]\nclip = 1\nsampling = 0.05\nepsilon = 8\n",
         ["p.toml:7:1: error: [plan.privacy] is missing 'delta' (a number in (0, 1), e.g. 1e-5)"]),
        ("\n[plan.privacy]\ndelta = 1e-5\nclip = 1\nsampling = 0.05\n",
         ["p.toml:7:1: error: [plan.privacy] needs 'epsilon' (the budget each site may spend, e.g. 8) or 'noise_multiplier' (σ)"]),
        ("\n[plan.privacy]\ndelta = 1e-5\nclip = 1\nsampling = 0.05\nepsilon = 8\nnoise_multiplier = 1\n",
         ["p.toml:11:1: error: give either 'noise_multiplier' or 'epsilon' (the target from which σ is computed), not both"]),
        ("\n[plan.privacy]\ndelta = 1\nclip = 0\nsampling = 1.5\nepsilon = 8\n",
         ["p.toml:8:9: error: delta must be in (0, 1), found 1.0", "p.toml:9:8: error: clip must be a finite number > 0, found 0.0",
          "p.toml:10:12: error: sampling must be in (0, 1], found 1.5"]),
        ("\n[plan.privacy]\ndelta = 1e-5\nclip = 1\nsampling = 0.05\nepsilon = 5000\n",
         ["p.toml:11:11: error: epsilon must be > 0 and at most 1000, found 5000.0"]),
        ("\n[plan.privacy]\ndelta = 1e-5\nclip = 1\nsampling = 0.05\nepsilom = 8\n",
         ["p.toml:7:1: error: [plan.privacy] needs 'epsilon' (the budget each site may spend, e.g. 8) or 'noise_multiplier' (σ)",
          "p.toml:11:1: error: unknown key 'epsilom' in [plan.privacy]; did you mean 'epsilon'?"]),
        ("privacy = 3\n", ["p.toml:6:11: error: 'privacy' must be a table ([plan.privacy]), found an integer"]),
    ])
    func badTables(_ extra: String, _ expected: [String]) {
        #expect(Self.diagnostics(Self.base + extra) == expected)
    }

    @Test func stratumSizeIsForSurvivalModelsAndBatchSizeIsNotUsed() throws {
        let cox = "[plan]\nmodel = \"cox\"\ntime = \"t\"\nevent = \"e\"\nrounds = 10\nlearning_rate = 0.5\n\n[plan.privacy]\ndelta = 1e-5\nclip = 1\nsampling = 0.05\nepsilon = 8\nstratum_size = 4\n"
        let parsed = try PlanFile.parse(source: cox, path: "p.toml")
        #expect(parsed.warnings.isEmpty && parsed.plan.privacy?.stratumSize == 4)
        #expect(Self.diagnostics(Self.base + "\n[plan.privacy]\ndelta = 1e-5\nclip = 1\nsampling = 0.05\nepsilon = 8\nstratum_size = 4\n") == [
            "p.toml:12:1: warning: 'stratum_size' is used only by cox and deepsurv (random strata); model 'logistic' clips each row"
        ])
        #expect(Self.diagnostics(cox.replacingOccurrences(of: "stratum_size = 4", with: "stratum_size = 0")) == [
            "p.toml:13:16: error: stratum_size must be from 1 to 100000, found 0"
        ])
        let batch = Self.base + "batch_size = 32\n\n[plan.privacy]\ndelta = 1e-5\nclip = 1\nsampling = 0.05\nepsilon = 8\n"
        #expect(Self.diagnostics(batch) == ["p.toml:6:1: warning: 'batch_size' is not used under [plan.privacy]: each step's batch is a Poisson sample at rate 'sampling'"])
    }

    /// `[plan.privacy.bounds]`: parsed by name (quoted names with spaces), covered by the hash
    /// with σ_s, written back by the writer; bad bounds are positioned errors.
    @Test func featureBoundsParseHashAndRoundTrip() throws {
        let source = Self.base + "\n[plan.privacy]\ndelta = 1e-5\nclip = 1\nsampling = 0.05\nepsilon = 8\nstatistics_noise_multiplier = 3\n"
            + "\n[plan.privacy.bounds]\n\"mean radius\" = [5, 30]\nage = [18.5, 100]\n"
        let parsed = try PlanFile.parse(source: source, path: "p.toml")
        #expect(parsed.warnings.isEmpty)
        let privacy = try #require(parsed.plan.privacy)
        #expect(privacy.bounds == [Plan.FeatureBound(name: "age", lower: 18.5, upper: 100), Plan.FeatureBound(name: "mean radius", lower: 5, upper: 30)])
        #expect(privacy.statisticsNoiseMultiplier == 3 && privacy.releasesStatistics)
        #expect(try privacy.bounds(for: ["mean radius", "age"]).get().map(\.name) == ["mean radius", "age"])
        #expect(throws: Plan.BoundsMismatch(missing: ["size"], unknown: ["age"])) { try privacy.bounds(for: ["mean radius", "size"]).get() }
        let text = TopologyWriter.plan(parsed.plan)
        #expect(try PlanFile.parse(source: text, path: "w.toml").plan == parsed.plan, "\(text)")
        var hashes: Set<[UInt8]> = []
        var p = parsed.plan
        hashes.insert(PlanHash.hash(p))
        p.privacy!.statisticsNoiseMultiplier = 4
        hashes.insert(PlanHash.hash(p))
        p.privacy!.bounds[0].upper = 101
        hashes.insert(PlanHash.hash(p))
        p.privacy!.bounds = []
        hashes.insert(PlanHash.hash(p))
        // Without bounds σ_s is not used: the plan hashes as one written without either key.
        var plain = p
        plain.privacy!.statisticsNoiseMultiplier = Plan.Privacy.defaultStatisticsNoiseMultiplier
        #expect(PlanHash.hash(plain) == PlanHash.hash(p))
        #expect(hashes.count == 4)
        let bad = Self.base + "\n[plan.privacy]\ndelta = 1e-5\nclip = 1\nsampling = 0.05\nepsilon = 8\n"
            + "\n[plan.privacy.bounds]\na = [1, 0]\nb = [1]\nc = \"wide\"\nd = [0, nan]\n"
        #expect(Self.diagnostics(bad) == [
            "p.toml:14:5: error: bound 'a' must have finite lower < upper (|value| ≤ 10¹⁵), found [1.0, 0.0]",
            "p.toml:15:5: error: bound 'b' must be two numbers [lower, upper], found 1 element",
            "p.toml:16:5: error: bound 'c' must be [lower, upper], found a string",
            "p.toml:17:5: error: bound 'd' must have finite lower < upper (|value| ≤ 10¹⁵), found [0.0, nan]",
        ])
        #expect(Self.diagnostics(Self.base + "\n[plan.privacy]\ndelta = 1e-5\nclip = 1\nsampling = 0.05\nepsilon = 8\nstatistics_noise_multiplier = 3\n") == [
            "p.toml:12:1: warning: 'statistics_noise_multiplier' is used only with [plan.privacy.bounds]; without bounds the statistics are released exactly"
        ])
    }

    /// `default_bound` declares every feature `bounds` does not name (one-hot columns).
    @Test func aDefaultBoundCoversTheUnnamedFeatures() throws {
        let source = Self.base + "\n[plan.privacy]\ndelta = 1e-5\nclip = 1\nsampling = 0.05\nepsilon = 8\ndefault_bound = [0, 1]\n"
            + "\n[plan.privacy.bounds]\nage = [18, 90]\n"
        let plan = try PlanFile.parse(source: source, path: "p.toml").plan
        let privacy = try #require(plan.privacy)
        #expect(privacy.releasesStatistics && privacy.defaultBound?.lower == 0 && privacy.defaultBound?.upper == 1)
        let resolved = try privacy.bounds(for: ["grade=II", "age"]).get()
        #expect(resolved == [Plan.FeatureBound(name: "grade=II", lower: 0, upper: 1), Plan.FeatureBound(name: "age", lower: 18, upper: 90)])
        #expect(try PlanFile.parse(source: TopologyWriter.plan(plan), path: "w.toml").plan == plan)
        var other = plan
        other.privacy!.defaultBound = Plan.FeatureBound(name: "", lower: 0, upper: 2)
        #expect(PlanHash.hash(other) != PlanHash.hash(plan))
        // Alone it is enough to release privately.
        let alone = try PlanFile.parse(source: Self.base + "privacy = { delta = 1e-5, clip = 1, sampling = 0.05, epsilon = 8, default_bound = [0, 1] }\n", path: "p.toml").plan
        #expect(alone.privacy?.releasesStatistics == true && alone.privacy?.bounds == [])
        #expect(Self.diagnostics(Self.base + "privacy = { delta = 1e-5, clip = 1, sampling = 0.05, epsilon = 8, default_bound = [1, 1] }\n") == [
            "p.toml:6:11: error: default_bound must have finite lower < upper (|value| ≤ 10¹⁵), found [1.0, 1.0]"
        ])
    }
}
