public import PlexusCore
public import PlexusGossip
public import PlexusLearning

/// Local training by the plan, as the gossip instance needs it: the plan's local steps of its
/// optimizer on this site's (standardized) rows, with the FedProx term toward the model the
/// round started from when `proximal` > 0.
public struct PlanLearner: LocalLearner {
    public private(set) var trainer: LocalTrainer
    /// The standardized training rows.
    public var data: Dataset
    public let steps: Int
    public let proximal: Bool

    /// - Parameters:
    ///   - seed: seeds the mini-batch order (each peer its own stream).
    ///   - advertisedSampleCount: the count this peer declares, if not its rows' (the attack
    ///     simulator's `sample-lie:N`). Default: `data.count`.
    public init(model: any Model, plan: Plan, data: Dataset, seed: UInt64, advertisedSampleCount: Int? = nil) {
        self.trainer = LocalTrainer(model: model, plan: plan, seed: seed)
        self.data = data
        self.sampleCount = advertisedSampleCount ?? data.count
        self.steps = plan.localSteps
        self.proximal = plan.proximal > 0
    }

    /// The number of training rows, as this peer declares it (fixed at creation: the data may be
    /// standardized later).
    public let sampleCount: Int

    public mutating func train(_ parameters: inout [Float], round: Int) -> Double {
        guard data.count > 0 else { return .nan }
        let reference = proximal ? parameters : nil
        return trainer.train(parameters: &parameters, on: data, steps: steps, reference: reference)
    }
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
