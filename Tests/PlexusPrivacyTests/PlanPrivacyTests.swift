import PlexusCore
import PlexusPrivacy
import Testing

@Suite struct PlanPrivacyTests {
    func plan(_ noise: Plan.Privacy.Noise, rounds: Int = 200, localSteps: Int = 5) -> Plan {
        var p = Plan(model: .logistic, rounds: rounds, learningRate: 0.1)
        p.localSteps = localSteps
        p.privacy = Plan.Privacy(delta: 1e-5, clip: 1, sampling: 0.01, noise: noise)
        return p
    }

    /// A target ε gives the smallest σ that keeps rounds × local steps within it.
    @Test func aTargetEpsilonIsMetWithTheLeastNoise() throws {
        let resolved = try PlanPrivacy(plan: plan(.epsilon(2)))
        #expect(resolved.steps == 1000)
        #expect(resolved.epsilon <= 2 && resolved.epsilon > 1.99, "\(resolved.epsilon)")
        // dp-accounting's calibration for the same run: σ = 1.0223 (the accountant fixture).
        #expect(abs(resolved.noiseMultiplier - 1.0222898327228331) < 1e-4)
        #expect(resolved.summary.hasPrefix("privacy: (ε = 2, δ = 1e-05) per site for 1000 DP-SGD steps at sampling 0.01, clip 1.0 per row, noise multiplier 1.022"), "\(resolved.summary)")
        #expect(resolved.summary.hasSuffix("training only: without [plan.privacy.bounds] the statistics round releases exact counts, means and sums of squares, and the standardization built from them depends on every patient"))
        #expect(!resolved.coversStatistics)
        var cox = plan(.epsilon(2))
        cox.model = .cox
        #expect(try PlanPrivacy(plan: cox).summary.contains("clip 1.0 per random stratum of about 8 rows"))
    }

    @Test func aGivenNoiseMultiplierIsCharged() throws {
        let resolved = try PlanPrivacy(plan: plan(.multiplier(1.0222898327228331)))
        #expect(abs(resolved.epsilon - 2) < 1e-3)
        let longer = try PlanPrivacy(plan: plan(.multiplier(1.0222898327228331), rounds: 400))
        #expect(longer.steps == 2000 && longer.epsilon > resolved.epsilon)
    }

    @Test func anUnreachableTargetIsAnError() {
        #expect(throws: PlanPrivacy.Problem.self) { try PlanPrivacy(plan: plan(.epsilon(1e-6), rounds: 10_000_000, localSteps: 1_000_000)) }
    }
}

extension PlanPrivacyTests {
    /// The final consensus rounds only gossip: they take no step and cost nothing.
    @Test func consensusRoundsCostNothing() throws {
        var p = plan(.multiplier(1.2), rounds: 220, localSteps: 5)
        let all = try PlanPrivacy(plan: p)
        p.consensusRounds = 20
        let fewer = try PlanPrivacy(plan: p)
        #expect(all.steps == 1100 && fewer.steps == 1000)
        #expect(fewer.epsilon < all.epsilon)
        #expect(fewer.epsilon(afterRound: 200) == fewer.epsilon && fewer.epsilon(afterRound: 220) == fewer.epsilon)
        #expect(fewer.epsilon(afterRound: 100) < fewer.epsilon)
    }
}

extension PlanPrivacyTests {
    /// With `[plan.privacy.bounds]` the statistics release is charged once, from round 0 on:
    /// σ = 1, q = 0.01, 1000 steps and a release at σ_s = 5 spend what dp-accounting's RDP
    /// accountant says for that composition (the fixture's case: ε = 2.2560494365610664).
    @Test func theStatisticsReleaseIsChargedOnce() throws {
        var p = plan(.multiplier(1))
        p.privacy!.bounds = [Plan.FeatureBound(name: "x", lower: 0, upper: 1)]
        p.privacy!.statisticsNoiseMultiplier = 5
        let resolved = try PlanPrivacy(plan: p)
        #expect(resolved.coversStatistics)
        #expect(abs(resolved.epsilon - 2.2560494365610664) / 2.2560494365610664 < 1e-6, "\(resolved.epsilon)")
        #expect(abs(resolved.epsilon(afterRound: 200) - resolved.epsilon) < 1e-12)
        // Before any step, the release alone has been spent.
        let releaseOnly = RDPCurve.sampledGaussian(samplingRate: 1, noiseMultiplier: 5).epsilon(delta: 1e-5).epsilon
        #expect(abs(resolved.epsilon(afterRound: 0) - releaseOnly) < 1e-12 && releaseOnly > 0.5)
        let withoutRelease = try PlanPrivacy(plan: plan(.multiplier(1)))
        #expect(resolved.epsilon > withoutRelease.epsilon)
        #expect(resolved.summary.hasSuffix("and the statistics round released with noise multiplier 5 under declared feature bounds: everything a site sends, given its public row count"), "\(resolved.summary)")
        // A target ε calibrates the training noise with the release counted in.
        var target = p
        target.privacy!.noise = .epsilon(2.2560494365610664)
        let calibrated = try PlanPrivacy(plan: target)
        #expect(abs(calibrated.noiseMultiplier - 1) < 1e-4 && calibrated.epsilon <= 2.2560494365610664 + 1e-9, "\(calibrated.noiseMultiplier)")
    }
}

