public import PlexusCore
public import PlexusGossip
public import PlexusLearning

/// Local training by the plan, as the gossip instance needs it: the plan's local steps of its
/// optimizer on this site's (standardized) rows, with the FedProx term toward the model the
/// round started from when `proximal` > 0.
public struct PlanLearner: LocalLearner {
    public private(set) var trainer: LocalTrainer
    public let data: Dataset
    public let steps: Int
    public let proximal: Bool

    /// - Parameter seed: seeds the mini-batch order (each peer its own stream).
    public init(model: any Model, plan: Plan, data: Dataset, seed: UInt64) {
        self.trainer = LocalTrainer(model: model, plan: plan, seed: seed)
        self.data = data
        self.steps = plan.localSteps
        self.proximal = plan.proximal > 0
    }

    public var sampleCount: Int { data.count }

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
