/// A Kaplan–Meier step function: the estimate at the largest distinct time ≤ t, 1 before the
/// first. With `reverse`, the censoring distribution G: censorings are the "events", and at a
/// tied time the events leave the risk set first (a row censored at t was still at risk of
/// being censored after the events at t).
public struct KaplanMeier: Sendable, Hashable {
    /// Distinct times, increasing.
    public private(set) var times: [Double] = []
    /// The estimate at each of ``times``.
    public private(set) var survival: [Double] = []

    /// - Precondition: `times` and `events` (0/1) have the same length.
    public init(times: [Double], events: [Float], reverse: Bool = false) {
        precondition(times.count == events.count, "one event per time")
        let order = times.indices.sorted { times[$0] < times[$1] }
        var atRisk = times.count
        var s = 1.0
        var k = 0
        while k < order.count {
            let t = times[order[k]]
            var end = k
            var d = 0
            while end < order.count && times[order[end]] == t {
                if events[order[end]] != 0 { d += 1 }
                end += 1
            }
            let censored = (end - k) - d
            let (numerator, denominator) = reverse ? (censored, atRisk - d) : (d, atRisk)
            if numerator > 0 && denominator > 0 { s *= 1 - Double(numerator) / Double(denominator) }
            self.times.append(t)
            self.survival.append(s)
            atRisk -= end - k
            k = end
        }
    }

    public func value(at t: Double) -> Double {
        let k = StepFunction.count(of: times, atOrBefore: t)
        return k == 0 ? 1 : survival[k - 1]
    }
}

/// Survival metrics that weight by the inverse probability of censoring (IPCW), G the reverse
/// Kaplan–Meier estimate of the training rows' censoring — scikit-survival's conventions:
///
/// - Uno's C: Harrell's pairs (an event at tᵢ against every row with a later time, or censored at
///   the same time), each weighted by G(tᵢ)⁻², events at or after `tau` left out; tied scores
///   (|Δ| ≤ 1e-8) count one half.
/// - Cumulative/dynamic AUC at t: cases are events at ≤ t (weight G(tᵢ)⁻¹), controls rows with
///   time > t; the weighted share of case–control pairs the score orders right (ties one half).
///   Its mean over the times weights each AUC(tₖ) by the drop of the test rows' Kaplan–Meier
///   estimate S over (tₖ₋₁, tₖ], divided by 1 − S(t_last).
/// - Brier score at t: the mean of S(t|x)²·[event at ≤ t]/G(tᵢ) + (1 − S(t|x))²·[time > t]/G(t);
///   the integrated Brier score is its trapezoid integral over the times divided by their span.
///
/// A weight whose G is 0 makes the metric `nil` (scikit-survival raises).
public struct CensoringWeights: Sendable {
    public let censoring: KaplanMeier

    /// G from the training rows.
    public init(trainTimes: [Double], trainEvents: [Float]) {
        censoring = KaplanMeier(times: trainTimes, events: trainEvents, reverse: true)
    }

    static let tiedTolerance = 1e-8

    /// Uno's C of `scores` (higher = earlier event) on the test rows.
    public func unoConcordance(times: [Double], events: [Float], scores: [Double], tau: Double? = nil) -> Double? {
        precondition(times.count == events.count && times.count == scores.count, "one time, event and score per row")
        let n = times.count
        let order = times.indices.sorted { times[$0] < times[$1] }
        var numerator = 0.0
        var denominator = 0.0
        var k = 0
        while k < n {
            let t = times[order[k]]
            var end = k
            while end < n && times[order[end]] == t { end += 1 }
            let censoredHere = (k..<end).map { order[$0] }.filter { events[$0] == 0 }
            for p in k..<end where events[order[p]] != 0 {
                let i = order[p]
                var weight = 0.0
                if tau.map({ t < $0 }) ?? true {
                    let g = censoring.value(at: t)
                    guard g > 0 else { return nil }
                    weight = 1 / (g * g)
                }
                let comparable = censoredHere + (end..<n).map { order[$0] }
                var score = 0.0
                for j in comparable {
                    let difference = scores[i] - scores[j]
                    if abs(difference) <= Self.tiedTolerance { score += 0.5 } else if difference > 0 { score += 1 }
                }
                numerator += weight * score
                denominator += weight * Double(comparable.count)
            }
            k = end
        }
        return denominator > 0 ? numerator / denominator : nil
    }

    /// The cumulative/dynamic AUC at each of `at`, and their mean weighted by the test rows'
    /// Kaplan–Meier estimate.
    public func cumulativeDynamicAUC(times: [Double], events: [Float], scores: [Double], at horizons: [Double]) -> (auc: [Double], mean: Double)? {
        precondition(times.count == events.count && times.count == scores.count, "one time, event and score per row")
        var aucs: [Double] = []
        for t in horizons {
            var caseWeight = 0.0
            var numerator = 0.0
            let controls = times.indices.filter { times[$0] > t }
            guard !controls.isEmpty else { return nil }
            for i in times.indices where times[i] <= t && events[i] != 0 {
                let g = censoring.value(at: times[i])
                guard g > 0 else { return nil }
                let w = 1 / g
                var score = 0.0
                for j in controls {
                    let difference = scores[i] - scores[j]
                    if abs(difference) <= Self.tiedTolerance { score += 0.5 } else if difference > 0 { score += 1 }
                }
                caseWeight += w
                numerator += w * score
            }
            guard caseWeight > 0 else { return nil }
            aucs.append(numerator / (caseWeight * Double(controls.count)))
        }
        guard let last = horizons.last else { return (aucs, .nan) }
        if horizons.count == 1 { return (aucs, aucs[0]) }
        let km = KaplanMeier(times: times, events: events)
        var previous = 1.0
        var integral = 0.0
        for (t, auc) in zip(horizons, aucs) {
            let s = km.value(at: t)
            integral += auc * (previous - s)
            previous = s
        }
        let mass = 1 - km.value(at: last)
        return mass > 0 ? (aucs, integral / mass) : nil
    }

    /// The Brier score at each of `at`; `survival[r][k]` is row r's predicted S(at[k]).
    public func brierScores(times: [Double], events: [Float], survival: [[Double]], at horizons: [Double]) -> [Double]? {
        precondition(times.count == events.count && survival.count == times.count, "one time, event and survival row per row")
        var out: [Double] = []
        for (k, t) in horizons.enumerated() {
            let gt = censoring.value(at: t)
            var sum = 0.0
            for r in times.indices {
                let s = survival[r][k]
                if times[r] <= t && events[r] != 0 {
                    let g = censoring.value(at: times[r])
                    if g > 0 { sum += s * s / g }  // scikit-survival: a zero G is an infinite divisor
                } else if times[r] > t {
                    if gt > 0 { sum += (1 - s) * (1 - s) / gt }
                }
            }
            out.append(sum / Double(max(times.count, 1)))
        }
        return out
    }

    /// The integrated Brier score over `at` (at least two increasing times).
    public func integratedBrierScore(times: [Double], events: [Float], survival: [[Double]], at horizons: [Double]) -> Double? {
        guard horizons.count >= 2, let last = horizons.last, last > horizons[0],
            let scores = brierScores(times: times, events: events, survival: survival, at: horizons)
        else { return nil }
        var integral = 0.0
        for k in 1..<horizons.count { integral += 0.5 * (scores[k] + scores[k - 1]) * (horizons[k] - horizons[k - 1]) }
        return integral / (last - horizons[0])
    }
}

/// One group of a calibration table: its rows, their mean predicted survival at the horizon, and
/// the Kaplan–Meier estimate of their observed survival there.
public struct CalibrationGroup: Sendable, Hashable, Codable {
    public var rows: Int
    public var predicted: Double
    public var observed: Double
}

public enum Calibration {
    /// Predicted against observed survival at horizon `t` by risk group: the rows sorted by
    /// predicted S(t), increasing (highest risk first; ties keep the row order), cut into `groups`
    /// runs of consecutive rows (group k holds rows ⌊k·n/groups⌋ to ⌊(k+1)·n/groups⌋ − 1).
    /// Empty groups (fewer rows than groups) are left out.
    public static func atHorizon(_ t: Double, times: [Double], events: [Float], predicted: [Double], groups: Int = 10) -> [CalibrationGroup] {
        precondition(times.count == events.count && times.count == predicted.count && groups >= 1, "one time, event and prediction per row")
        let n = times.count
        let order = times.indices.sorted { predicted[$0] != predicted[$1] ? predicted[$0] < predicted[$1] : $0 < $1 }
        var out: [CalibrationGroup] = []
        for g in 0..<groups {
            let rows = Array(order[(g * n / groups)..<((g + 1) * n / groups)])
            guard !rows.isEmpty else { continue }
            let km = KaplanMeier(times: rows.map { times[$0] }, events: rows.map { events[$0] })
            out.append(
                CalibrationGroup(
                    rows: rows.count, predicted: rows.reduce(0) { $0 + predicted[$1] } / Double(rows.count), observed: km.value(at: t)))
        }
        return out
    }
}

/// A percentile bootstrap interval of Harrell's C: `resamples` draws of n rows with replacement
/// (seeded, so the interval is a function of the seed), the C-index of each, and the 2.5th and
/// 97.5th percentiles (linear interpolation between order statistics). A resample without a
/// comparable pair (no event before another row's time) has no C-index: it is left out and
/// counted in ``skipped``, and the percentiles come from the others.
public struct BootstrapInterval: Sendable, Hashable, Codable {
    public var estimate: Double
    public var lower: Double
    public var upper: Double
    public var resamples: Int
    /// Resamples without a comparable pair, left out.
    public var skipped: Int

    /// `nil` when the rows themselves have no comparable pair, or every resample was skipped.
    public static func concordance(
        times: [Double], events: [Float], risks: [Double], resamples: Int, seed: UInt64
    ) -> BootstrapInterval? {
        precondition(times.count == events.count && times.count == risks.count && resamples >= 1, "one time, event and risk per row")
        let n = times.count
        let whole = SurvivalMetrics.concordance(times: times, scores: risks.map { -$0 }, events: events)
        guard n > 0, whole.pairs > 0 else { return nil }
        var generator = Xoshiro256(seed: seed, stream: "bootstrap")
        var values: [Double] = []
        values.reserveCapacity(resamples)
        var t = [Double](repeating: 0, count: n)
        var e = [Float](repeating: 0, count: n)
        var s = [Double](repeating: 0, count: n)
        for _ in 0..<resamples {
            for k in 0..<n {
                let r = generator.nextInt(below: n)
                t[k] = times[r]
                e[k] = events[r]
                s[k] = -risks[r]
            }
            let c = SurvivalMetrics.concordance(times: t, scores: s, events: e)
            if c.pairs > 0 { values.append(c.index) }
        }
        guard !values.isEmpty else { return nil }
        values.sort()
        func percentile(_ q: Double) -> Double {
            let position = q * Double(values.count - 1)
            let below = Int(position.rounded(.down))
            let above = min(below + 1, values.count - 1)
            return values[below] + (position - Double(below)) * (values[above] - values[below])
        }
        return BootstrapInterval(
            estimate: whole.index, lower: percentile(0.025), upper: percentile(0.975), resamples: resamples,
            skipped: resamples - values.count)
    }
}
