#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
public import PlexusCore

/// The negative Cox partial log-likelihood of log-risks η, divided by the number of rows, and its
/// gradient with respect to η — in O(n) given the dataset's rows sorted by decreasing time
/// (``Dataset/descendingTimeOrder``, computed once in O(n log n)).
///
/// One pass in decreasing time accumulates the risk-set sums S = Σ_{T_j ≥ t} e^{η_j} group by group
/// of tied times; a second pass in increasing time accumulates Σ_{t_g ≤ T_k} d_g / S_g (Breslow) or
/// its Efron analogue, which gives each row's gradient. Exponentials are shifted by the running
/// maximum of η, so extreme log-risks neither overflow nor leave a zero risk sum.
public enum CoxLoss {
    /// - Parameters:
    ///   - eta: one log-risk per row of `batch`.
    ///   - dEta: receives ∂loss/∂η per row.
    /// - Returns: −(1/n)·log partial likelihood.
    public static func lossAndGradient(
        eta: UnsafeBufferPointer<Float>, batch: Dataset, ties: Plan.Ties, dEta: UnsafeMutableBufferPointer<Float>
    ) -> Double {
        let n = batch.count
        precondition(batch.task == .survival && eta.count >= n && dEta.count >= n, "Cox loss needs survival rows")
        guard n > 0 else { return 0 }
        var expEta = [Double](repeating: 0, count: n)
        // Per group of tied times (in decreasing time): its end position in the order, its shift r_g
        // (the running max of η, so every exp(η − r_g) ≤ 1 and nothing overflows or underflows to a
        // zero risk sum), and a_g, b_g relative to that shift.
        var groupEnd: [Int32] = []
        var groupShift: [Double] = []
        var groupA: [Double] = []
        var groupB: [Double] = []
        groupEnd.reserveCapacity(n)
        groupShift.reserveCapacity(n)
        groupA.reserveCapacity(n)
        groupB.reserveCapacity(n)
        var loss = 0.0
        batch.descendingTimeOrder.withUnsafeBufferPointer { order in
            batch.times.withUnsafeBufferPointer { times in
                batch.events.withUnsafeBufferPointer { events in
                    expEta.withUnsafeMutableBufferPointer { ex in
                        var riskSum = 0.0  // Σ exp(η_j − shift) over the risk set so far
                        var shift = -Double.infinity
                        var k = 0
                        while k < n {
                            let t = times[Int(order[k])]
                            var end = k
                            var groupMax = shift
                            while end < n && times[Int(order[end])] == t {
                                groupMax = max(groupMax, Double(eta[Int(order[end])]))
                                end += 1
                            }
                            if groupMax > shift {
                                riskSum = shift == -.infinity ? 0 : riskSum * exp(shift - groupMax)
                                shift = groupMax
                            }
                            var tiedEventSum = 0.0
                            var tiedEvents = 0
                            var tiedEta = 0.0
                            for p in k..<end {
                                let idx = Int(order[p])
                                let e = exp(Double(eta[idx]) - shift)
                                ex[idx] = e
                                riskSum += e
                                if events[idx] != 0 {
                                    tiedEventSum += e
                                    tiedEvents += 1
                                    tiedEta += Double(eta[idx])
                                }
                            }
                            k = end
                            var a = 0.0
                            var b = 0.0
                            if tiedEvents > 0 {
                                let d = Double(tiedEvents)
                                if ties == .breslow || tiedEvents == 1 {
                                    loss += d * (log(riskSum) + shift) - tiedEta
                                    a = d / riskSum
                                } else {
                                    for l in 0..<tiedEvents {
                                        let f = Double(l) / d
                                        let s = riskSum - f * tiedEventSum
                                        loss += log(s) + shift
                                        a += 1 / s
                                        b += f / s
                                    }
                                    loss -= tiedEta
                                }
                            }
                            groupEnd.append(Int32(end))
                            groupShift.append(shift)
                            groupA.append(a)
                            groupB.append(b)
                        }
                        // Increasing time: C_g = a_g + C_{g+1}·exp(r_g − r_{g+1}), all factors ≤ 1.
                        let scale = 1 / Double(n)
                        var cumulative = 0.0
                        var g = groupEnd.count - 1
                        while g >= 0 {
                            if g + 1 < groupEnd.count { cumulative *= exp(groupShift[g] - groupShift[g + 1]) }
                            cumulative += groupA[g]
                            let start = g > 0 ? Int(groupEnd[g - 1]) : 0
                            for p in start..<Int(groupEnd[g]) {
                                let idx = Int(order[p])
                                let delta = Double(events[idx])
                                dEta[idx] = Float((ex[idx] * (cumulative - delta * groupB[g]) - delta) * scale)
                            }
                            g -= 1
                        }
                    }
                }
            }
        }
        return loss / Double(n)
    }
}

/// Cox proportional hazards: log-risk η = β·x (no intercept: the baseline hazard absorbs it).
///
/// Layout: `weight` [d] (penalised). Loss: ``CoxLoss`` with the plan's ties (Breslow by default).
public struct CoxRegression: Model {
    public let dimension: Int
    public let ties: Plan.Ties
    public let layout: ParameterLayout
    public var task: Task { .survival }

    public init(dimension: Int, ties: Plan.Ties = .breslow) {
        precondition(dimension > 0, "a model needs at least one feature")
        self.dimension = dimension
        self.ties = ties
        self.layout = ParameterLayout([("weight", [dimension], true)])
    }

    public func initialParameters(using generator: inout Xoshiro256) -> [Float] {
        [Float](repeating: 0, count: layout.count)
    }

    public func lossAndGradient(
        parameters: UnsafeBufferPointer<Float>, batch: Dataset, gradient: UnsafeMutableBufferPointer<Float>
    ) -> Double {
        precondition(batch.task == .survival && batch.dimension == dimension, "batch does not fit the model")
        precondition(parameters.count == layout.count && gradient.count == layout.count, "parameter count mismatch")
        let n = batch.count
        let d = dimension
        var eta = [Float](repeating: 0, count: n)
        eta.withUnsafeMutableBufferPointer { predict(parameters: parameters, batch: batch, into: $0) }
        var dEta = [Float](repeating: 0, count: n)
        let loss = eta.withUnsafeBufferPointer { e in
            dEta.withUnsafeMutableBufferPointer { g in CoxLoss.lossAndGradient(eta: e, batch: batch, ties: ties, dEta: g) }
        }
        var accumulated = [Double](repeating: 0, count: d)
        batch.features.withUnsafeBufferPointer { xs in
            dEta.withUnsafeBufferPointer { r in
                accumulated.withUnsafeMutableBufferPointer { acc in
                    guard n > 0 else { return }
                    LinearKernels.accumulateTransposed(
                        x: xs.baseAddress!, rows: n, dimension: d, residuals: r.baseAddress!, into: acc.baseAddress!)
                }
            }
        }
        for j in 0..<d { gradient[j] = Float(accumulated[j]) }
        return loss
    }

    public func predict(parameters: UnsafeBufferPointer<Float>, batch: Dataset, into output: UnsafeMutableBufferPointer<Float>) {
        precondition(batch.dimension == dimension && output.count >= batch.count, "batch does not fit the model")
        guard batch.count > 0 else { return }
        batch.features.withUnsafeBufferPointer { xs in
            LinearKernels.predict(
                x: xs.baseAddress!, rows: batch.count, dimension: dimension, weights: parameters.baseAddress!, bias: 0,
                into: output.baseAddress!)
        }
    }
}
