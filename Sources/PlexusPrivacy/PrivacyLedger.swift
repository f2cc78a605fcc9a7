/// One site's privacy budget over a run: what it has released so far — local training steps of
/// the sampled Gaussian mechanism and at most one statistics release — and what that costs in
/// (ε, δ) under the Rényi accountant. A pure value: the node keeps it in its state file, so a
/// restart neither resets the budget nor releases anything twice.
///
/// Identical steps compose by multiplying their RDP curve, so the ledger stores counts, not
/// curves: its encoded form is a few numbers, and decoding recomputes the curves.
public struct PrivacyLedger: Sendable, Hashable {
    /// The mechanism of one local step.
    public let samplingRate: Double
    public let noiseMultiplier: Double
    /// The statistics release's noise multiplier (its sensitivity is fixed by the declared
    /// feature bounds); nil when the run releases no statistics under this budget.
    public let statisticsNoiseMultiplier: Double?
    public let delta: Double
    /// The ε the site may spend; `.infinity` for an accountant without a budget.
    public let budget: Double
    public private(set) var steps = 0
    public private(set) var statisticsReleased = false

    private let stepCurve: RDPCurve
    private let statisticsCurve: RDPCurve

    public init(samplingRate: Double, noiseMultiplier: Double, statisticsNoiseMultiplier: Double? = nil, delta: Double, budget: Double) {
        precondition(samplingRate > 0 && samplingRate <= 1 && noiseMultiplier > 0 && noiseMultiplier.isFinite, "q in (0, 1], σ finite and > 0")
        precondition(statisticsNoiseMultiplier.map { $0 > 0 && $0.isFinite } ?? true, "statistics σ finite and > 0")
        precondition(delta > 0 && delta < 1 && budget > 0, "δ in (0, 1), ε > 0")
        self.samplingRate = samplingRate
        self.noiseMultiplier = noiseMultiplier
        self.statisticsNoiseMultiplier = statisticsNoiseMultiplier
        self.delta = delta
        self.budget = budget
        stepCurve = RDPCurve.sampledGaussian(samplingRate: samplingRate, noiseMultiplier: noiseMultiplier)
        statisticsCurve = statisticsNoiseMultiplier.map { RDPCurve.sampledGaussian(samplingRate: 1, noiseMultiplier: $0) } ?? RDPCurve()
    }

    /// The RDP curve of everything recorded, plus `extraSteps` more steps.
    public func curve(extraSteps: Int = 0) -> RDPCurve {
        stepCurve.composed(steps + extraSteps) + (statisticsReleased ? statisticsCurve : RDPCurve())
    }

    /// ε spent so far (at the ledger's δ).
    public var epsilon: Double { curve().epsilon(delta: delta).epsilon }

    /// Whether `count` more steps stay within the budget.
    public func allows(steps count: Int) -> Bool {
        curve(extraSteps: count).epsilon(delta: delta).epsilon <= budget
    }

    /// Records `count` steps; refused (false, nothing recorded) if they would overrun the budget:
    /// a budget is never silently overrun.
    @discardableResult
    public mutating func record(steps count: Int) -> Bool {
        precondition(count >= 0)
        guard allows(steps: count) else { return false }
        steps += count
        return true
    }

    /// Records the statistics release; false (nothing recorded) if it was released already —
    /// a restart must not release it twice — or if it would overrun the budget.
    @discardableResult
    public mutating func recordStatisticsRelease() -> Bool {
        guard statisticsNoiseMultiplier != nil, !statisticsReleased else { return false }
        guard (curve() + statisticsCurve).epsilon(delta: delta).epsilon <= budget else { return false }
        statisticsReleased = true
        return true
    }

    /// The most steps the budget allows after what is recorded (a binary search on the monotone ε).
    public var remainingSteps: Int {
        guard allows(steps: 1) else { return 0 }
        var low = 1, high = 2
        while allows(steps: high) {
            low = high
            if high > Int.max / 4 { return high }
            high *= 2
        }
        while high - low > 1 {
            let middle = low + (high - low) / 2
            if allows(steps: middle) { low = middle } else { high = middle }
        }
        return low
    }
}

extension PrivacyLedger: Codable {
    enum CodingKeys: String, CodingKey {
        case samplingRate = "sampling", noiseMultiplier = "noise_multiplier", statisticsNoiseMultiplier = "statistics_noise_multiplier"
        case delta, budget, steps, statisticsReleased = "statistics_released"
    }

    /// Decoding checks what it reads: a state file is outside input.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let q = try c.decode(Double.self, forKey: .samplingRate)
        let sigma = try c.decode(Double.self, forKey: .noiseMultiplier)
        let statistics = try c.decodeIfPresent(Double.self, forKey: .statisticsNoiseMultiplier)
        let delta = try c.decode(Double.self, forKey: .delta)
        let budget = try c.decode(Double.self, forKey: .budget)
        let steps = try c.decode(Int.self, forKey: .steps)
        let released = try c.decode(Bool.self, forKey: .statisticsReleased)
        guard q > 0, q <= 1, sigma > 0, sigma.isFinite, statistics.map({ $0 > 0 && $0.isFinite }) ?? true,
              delta > 0, delta < 1, budget > 0, steps >= 0, !(released && statistics == nil)
        else {
            throw DecodingError.dataCorrupted(.init(codingPath: c.codingPath, debugDescription: "a privacy ledger out of range"))
        }
        self.init(samplingRate: q, noiseMultiplier: sigma, statisticsNoiseMultiplier: statistics, delta: delta, budget: budget)
        self.steps = steps
        statisticsReleased = released
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(samplingRate, forKey: .samplingRate)
        try c.encode(noiseMultiplier, forKey: .noiseMultiplier)
        try c.encodeIfPresent(statisticsNoiseMultiplier, forKey: .statisticsNoiseMultiplier)
        try c.encode(delta, forKey: .delta)
        try c.encode(budget, forKey: .budget)
        try c.encode(steps, forKey: .steps)
        try c.encode(statisticsReleased, forKey: .statisticsReleased)
    }
}
