public import PlexusCore
import PlexusCrypto
public import PlexusGossip
public import PlexusLearning
public import PlexusPrivacy

/// Local training by the plan, as the gossip instance needs it: the plan's local steps of its
/// optimizer on this site's (standardized) rows, with the FedProx term toward the model the
/// round started from when `proximal` > 0 — or, under `[plan.privacy]`, the same number of
/// DP-SGD steps (``LocalTrainer/trainPrivately(parameters:on:steps:reference:privacy:generator:)``).
public struct PlanLearner: LocalLearner {
    public private(set) var trainer: LocalTrainer
    /// The standardized training rows.
    public var data: Dataset
    public let steps: Int
    public let proximal: Bool
    /// DP-SGD's settings (σ resolved from the plan), nil without `[plan.privacy]`.
    public let privacy: PrivateSGD?
    /// The last round whose steps the privacy budget pays for (the plan's training rounds: σ is
    /// calibrated for exactly (rounds − consensus_rounds) × local steps). A later round trains nothing.
    public let lastPrivateRound: Int
    private let noise: NoiseSource?

    /// Where the privacy noise and the secret Poisson batches come from.
    public enum Noise: Sendable, Hashable {
        /// The operating system's CSPRNG: what a real node uses.
        case system
        /// A ChaCha20 stream keyed by this label: the simulator (reproducible research runs),
        /// and a real node under the documented test flag.
        case deterministic(label: String)
    }

    /// - Parameters:
    ///   - seed: seeds the mini-batch order (each peer its own stream).
    ///   - advertisedSampleCount: the count this peer declares, if not its rows' (the attack
    ///     simulator's `sample-lie:N`). Default: `data.count`.
    ///   - noise: the privacy noise source; ignored without `[plan.privacy]`.
    /// - Throws: ``PlanPrivacy/Problem`` when the plan's target ε cannot be met.
    public init(model: any Model, plan: Plan, data: Dataset, seed: UInt64, advertisedSampleCount: Int? = nil, noise: Noise = .system) throws(PlanPrivacy.Problem) {
        self.trainer = LocalTrainer(model: model, plan: plan, seed: seed)
        self.data = data
        self.sampleCount = advertisedSampleCount ?? data.count
        self.steps = plan.localSteps
        self.proximal = plan.proximal > 0
        self.lastPrivateRound = plan.rounds - plan.consensusRounds
        if let p = plan.privacy {
            let resolved = try PlanPrivacy(plan: plan)
            privacy = PrivateSGD(samplingRate: p.sampling, clip: Float(p.clip), noiseMultiplier: resolved.noiseMultiplier, stratumSize: p.stratumSize)
            self.noise = NoiseSource(noise)
        } else {
            privacy = nil
            self.noise = nil
        }
    }

    /// The number of training rows, as this peer declares it (fixed at creation: the data may be
    /// standardized later).
    public let sampleCount: Int

    public mutating func train(_ parameters: inout [Float], round: Int) -> Double {
        guard data.count > 0 else { return .nan }
        let reference = proximal ? parameters : nil
        guard let privacy, let noise else {
            return trainer.train(parameters: &parameters, on: data, steps: steps, reference: reference)
        }
        // Past the budget: the model is kept as it is (mixing and sending are post-processing).
        guard round <= lastPrivateRound else { return .nan }
        return noise.withGenerator { generator in
            trainer.trainPrivately(parameters: &parameters, on: data, steps: steps, reference: reference, privacy: privacy, generator: &generator)?.meanLoss ?? .nan
        }
    }
}

/// A learner's privacy noise generator. A reference, so a copied learner draws on (and
/// advances) the same stream: noise is never replayed. One learner uses it at a time (the
/// instance trains on one task), hence unchecked.
final class NoiseSource: @unchecked Sendable {
    private var generator: any RandomNumberGenerator

    init(_ kind: PlanLearner.Noise) {
        switch kind {
        case .system: generator = SystemNoiseGenerator()
        case .deterministic(let label): generator = DeterministicNoiseGenerator(label: label)
        }
    }

    func withGenerator<R>(_ body: (inout any RandomNumberGenerator) -> R) -> R { body(&generator) }
}

/// The metrics logged for a model: name and value, in a fixed order.
public func metricPairs(_ evaluation: Evaluation) -> [(String, Double)] {
    if let c = evaluation.classification {
        return [("accuracy", c.accuracy), ("f1", c.f1), ("auc", c.rocAUC), ("log_loss", c.logLoss)]
    }
    if let s = evaluation.survival {
        return [("c_index", s.concordance), ("loss", evaluation.loss)]
    }
    return [("loss", evaluation.loss)]
}
