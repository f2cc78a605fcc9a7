import PlexusCore
public import PlexusLearning

/// The loss-threshold membership-inference attack (Yeom, Giacomelli, Fredrikson & Jha 2018,
/// "Privacy risk in machine learning"): guess that a row was in the training set when the
/// model's loss on it is at most a threshold τ. Its *advantage* is TPR − FPR: the share of
/// training rows (members) guessed as members minus the share of held-out rows (non-members)
/// guessed as members — 0 for a model whose losses say nothing about membership, 1 when every
/// member's loss is below every non-member's. (ε, δ)-DP bounds it by e^ε − 1 + δ, whatever τ.
///
/// Two thresholds: the best one for the attacker (the maximum over every τ, which on finite
/// samples is biased upward — two draws of one distribution differ somewhere), and Yeom's
/// own, the mean training loss, which an attacker who knows only that can use.
public struct MembershipAttack: Sendable, Hashable {
    /// max over τ of TPR(τ) − FPR(τ), with τ = −∞ (no guess "member": 0 − 0) included, so ≥ 0.
    public var advantage: Double
    /// The τ that reaches ``advantage`` (the smallest such; −∞ when none beats 0).
    public var threshold: Double
    public var truePositiveRate: Double
    public var falsePositiveRate: Double
    /// TPR − FPR at τ = the mean member loss (may be negative).
    public var advantageAtMeanTrainingLoss: Double

    /// The attack on per-row losses of members (training rows) and non-members (held-out rows).
    public init(memberLosses: [Double], nonMemberLosses: [Double]) {
        precondition(!memberLosses.isEmpty && !nonMemberLosses.isEmpty, "members and non-members")
        precondition((memberLosses + nonMemberLosses).allSatisfy { !$0.isNaN }, "losses are numbers")
        let members = memberLosses.sorted()
        let others = nonMemberLosses.sorted()
        let m = Double(members.count), n = Double(others.count)
        var best = (advantage: 0.0, threshold: -Double.infinity, tpr: 0.0, fpr: 0.0)
        var i = 0, j = 0
        // Every distinct loss is a threshold; between two of them nothing changes.
        for tau in Set(members + others).sorted() {
            while i < members.count && members[i] <= tau { i += 1 }
            while j < others.count && others[j] <= tau { j += 1 }
            let tpr = Double(i) / m, fpr = Double(j) / n
            if tpr - fpr > best.advantage { best = (tpr - fpr, tau, tpr, fpr) }
        }
        advantage = best.advantage
        threshold = best.threshold
        truePositiveRate = best.tpr
        falsePositiveRate = best.fpr
        let mean = memberLosses.reduce(0, +) / m
        advantageAtMeanTrainingLoss = Double(members.count { $0 <= mean }) / m - Double(others.count { $0 <= mean }) / n
    }

    /// What the best-threshold ``advantage`` reaches by chance alone on these losses: its mean
    /// over `trials` random relabellings of the pooled losses into as many members and
    /// non-members (a permutation test's null). The maximum over thresholds finds a gap between
    /// any two finite samples — for distinct losses about √(π/8)·√((m + n)/(m·n)), the one-sided
    /// Kolmogorov–Smirnov statistic's mean — and less where losses tie (a model that says little
    /// gives many rows one loss); an advantage near this level says nothing about membership.
    public static func chanceAdvantage(memberLosses: [Double], nonMemberLosses: [Double], trials: Int = 200, seed: UInt64 = 0) -> Double {
        precondition(!memberLosses.isEmpty && !nonMemberLosses.isEmpty && trials > 0, "members, non-members and trials")
        var generator = SplitMix64(seed: seed)
        var pooled = memberLosses + nonMemberLosses
        var total = 0.0
        for _ in 0..<trials {
            for k in stride(from: pooled.count - 1, to: 0, by: -1) { pooled.swapAt(k, generator.below(k + 1)) }
            total += MembershipAttack(memberLosses: Array(pooled[..<memberLosses.count]), nonMemberLosses: Array(pooled[memberLosses.count...])).advantage
        }
        return total / Double(trials)
    }

    /// The attack on a classifier: its log-loss on each raw row of `members` and `nonMembers`.
    public init(_ trained: TrainedModel, members: Dataset, nonMembers: Dataset) {
        self.init(memberLosses: Self.rowLosses(trained, on: members), nonMemberLosses: Self.rowLosses(trained, on: nonMembers))
    }

    /// A classifier's loss on each raw (unstandardized) row: the model's own data loss (the
    /// log-loss −[y log p + (1 − y) log(1 − p)], in Float64 from the logit) on that row alone.
    public static func rowLosses(_ trained: TrainedModel, on raw: Dataset) -> [Double] {
        precondition(raw.task == .classification, "the loss-threshold attack here needs a per-row loss: classifiers only")
        let standardized = trained.standardization.applied(to: raw)
        return (0..<standardized.count).map { r in trained.model.loss(parameters: trained.parameters, batch: standardized.subset(r..<(r + 1))) }
    }
}
