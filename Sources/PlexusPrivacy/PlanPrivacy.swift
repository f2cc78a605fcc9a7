public import PlexusCore

/// A plan's `[plan.privacy]` resolved to numbers: the noise multiplier (given, or found for the
/// target ε), the steps a site takes, and the (ε, δ) those steps spend.
///
/// What it covers: every local DP-SGD step of every training round ((rounds − consensus_rounds)
/// × local steps per site; the final consensus rounds only gossip, which is post-processing),
/// and — with `[plan.privacy.bounds]` — the statistics round's Gaussian release (sensitivity 1,
/// noise multiplier σ_s, charged once, from round 0 on). Without bounds the statistics round
/// releases exact statistics, and every line that prints ε says it covers training only.
public struct PlanPrivacy: Sendable, Hashable {
    public let privacy: Plan.Privacy
    /// σ.
    public let noiseMultiplier: Double
    /// Local steps per site over the whole run.
    public let steps: Int
    /// ε spent by all of them at δ.
    public let epsilon: Double
    /// The Rényi order the conversion chose.
    public let order: Double

    public enum Problem: Error, Hashable, Sendable, CustomStringConvertible {
        /// No σ up to the largest allowed reaches the target.
        case unreachable(epsilon: Double, steps: Int)

        public var description: String {
            switch self {
            case .unreachable(let e, let steps):
                "no noise_multiplier up to 10000 keeps \(steps) steps within epsilon \(e): lower rounds × local_steps or sampling, or raise epsilon"
            }
        }
    }

    public init(plan: Plan) throws(Problem) {
        guard let privacy = plan.privacy else { preconditionFailure("the plan has no [plan.privacy]") }
        self.privacy = privacy
        // The final consensus_rounds only gossip (post-processing): no step, no cost.
        let (rounds, overflow) = max(0, plan.rounds - plan.consensusRounds).multipliedReportingOverflow(by: plan.localSteps)
        steps = overflow ? Int.max : rounds
        statistics = privacy.releasesStatistics
            ? RDPCurve.sampledGaussian(samplingRate: 1, noiseMultiplier: privacy.statisticsNoiseMultiplier) : RDPCurve()
        switch privacy.noise {
        case .multiplier(let sigma):
            noiseMultiplier = sigma
        case .epsilon(let target):
            guard let sigma = NoiseCalibration.noiseMultiplier(
                epsilon: target, delta: privacy.delta, samplingRate: privacy.sampling, steps: steps, fixed: statistics
            ) else {
                throw .unreachable(epsilon: target, steps: steps)
            }
            noiseMultiplier = sigma
        }
        let spent = (statistics + RDPCurve.sampledGaussian(samplingRate: privacy.sampling, noiseMultiplier: noiseMultiplier).composed(steps))
            .epsilon(delta: privacy.delta)
        epsilon = spent.epsilon
        order = spent.order
        stratified = plan.model.isSurvival
        stepsPerRound = plan.localSteps
    }

    /// Local steps per round.
    public let stepsPerRound: Int
    /// The statistics release's RDP curve (empty without `[plan.privacy.bounds]`).
    private let statistics: RDPCurve
    /// Whether ε covers the statistics round too (the plan declares bounds).
    public var coversStatistics: Bool { privacy.releasesStatistics }

    /// ε spent by the end of `round` (its steps and every earlier round's), at the plan's δ.
    public func epsilon(afterRound round: Int) -> Double {
        let (n, overflow) = max(0, min(round, Int.max / max(1, stepsPerRound))).multipliedReportingOverflow(by: stepsPerRound)
        let count = overflow ? steps : min(n, steps)
        return (statistics + RDPCurve.sampledGaussian(samplingRate: privacy.sampling, noiseMultiplier: noiseMultiplier).composed(count))
            .epsilon(delta: privacy.delta).epsilon
    }

    /// Whether the plan's model clips per random stratum (Cox, DeepSurv: sensitivity 2C) rather
    /// than per row.
    public let stratified: Bool

    /// One line for `topology check`, the node's start-up and the simulator's header.
    public var summary: String {
        let eps = epsilon.isFinite ? String(format3(epsilon)) : "∞"
        let clipping = stratified ? "clip \(privacy.clip) per random stratum of about \(privacy.stratumSize) rows" : "clip \(privacy.clip) per row"
        let head = "privacy: (ε = \(eps), δ = \(privacy.delta)) per site for \(steps) DP-SGD steps at sampling \(privacy.sampling), "
            + "\(clipping), noise multiplier \(format3(noiseMultiplier))"
        if coversStatistics {
            return head + ", and the statistics round released with noise multiplier \(format3(privacy.statisticsNoiseMultiplier)) "
                + "under declared feature bounds: everything a site sends, given its public row count"
        }
        return head + "; training only: without [plan.privacy.bounds] the statistics round releases exact "
            + "counts, means and sums of squares, and the standardization built from them depends on every patient"
    }

    private func format3(_ x: Double) -> String {
        let scaled = (x * 1000).rounded() / 1000
        return scaled == scaled.rounded() ? String(Int(scaled)) : String(scaled)
    }
}
