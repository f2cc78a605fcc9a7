#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
public import PlexusCore

/// What one site contributes to inference at a given parameter vector θ, in Float64: its
/// log-likelihood ℓ(θ), score ∂ℓ/∂θ and observed information −∂²ℓ/∂θ². Every field is a sum over
/// the site's rows (for Cox, over the site's own risk sets: the partial likelihood stratified by
/// site), so the network's summary is the element-wise sum of the sites' (``+``) — what sites
/// exchange to get standard errors without pooling rows.
///
/// The log-likelihood is unpenalised; ``penalized(l2:mask:)`` adds the plan's L2 term once, on
/// the sum.
public struct InformationSummary: Sendable, Hashable, Codable {
    /// Number of parameters (the length of ``score``; ``information`` is `dimension × dimension`).
    public var dimension: Int
    /// Rows summed.
    public var rows: Int
    /// Events (survival) or positive labels (classification) among them.
    public var events: Int
    public var logLikelihood: Double
    /// ∂ℓ/∂θ.
    public var score: [Double]
    /// −∂²ℓ/∂θ², row-major, symmetric.
    public var information: [Double]

    public init(dimension: Int) {
        self.dimension = dimension
        self.rows = 0
        self.events = 0
        self.logLikelihood = 0
        self.score = [Double](repeating: 0, count: dimension)
        self.information = [Double](repeating: 0, count: dimension * dimension)
    }

    /// The summary of both row sets (strata): every field added.
    public static func + (a: InformationSummary, b: InformationSummary) -> InformationSummary {
        precondition(a.dimension == b.dimension, "summaries of different dimensions")
        var out = a
        out.rows += b.rows
        out.events += b.events
        out.logLikelihood += b.logLikelihood
        for i in out.score.indices { out.score[i] += b.score[i] }
        for i in out.information.indices { out.information[i] += b.information[i] }
        return out
    }

    /// The sum of the sites' summaries, in the order given; `nil` when there are none.
    public static func sum(_ sites: [InformationSummary]) -> InformationSummary? {
        guard var total = sites.first else { return nil }
        for site in sites.dropFirst() { total = total + site }
        return total
    }

    /// With the plan's penalty on the summed rows: ℓ − n·λ/2·Σ θ², score − n·λ·θ and information
    /// + n·λ on the diagonal, over the penalised entries (`mask`) — Plexus' objective (a mean loss
    /// plus λ/2‖w‖²) times n.
    public func penalized(at theta: [Double], l2: Double, mask: [Bool]) -> InformationSummary {
        precondition(theta.count == dimension && mask.count == dimension, "one θ and mask entry per parameter")
        guard l2 > 0 else { return self }
        var out = self
        let weight = Double(rows) * l2
        for j in 0..<dimension where mask[j] {
            out.logLikelihood -= 0.5 * weight * theta[j] * theta[j]
            out.score[j] -= weight * theta[j]
            out.information[j * dimension + j] += weight
        }
        return out
    }
}

/// The Cox partial likelihood in Float64 — log-likelihood, score and observed information —
/// Breslow or Efron ties, on standardized rows.
///
/// One pass in decreasing time accumulates each stratum's risk-set sums S₀ = Σ e^η, S₁ = Σ e^η x,
/// S₂ = Σ e^η x xᵀ; each group of tied event times of a stratum, with m events whose sums are
/// T₀, T₁, T₂, adds for l = 0…m−1 (f = l/m for Efron, 0 for Breslow), with sₖ = Sₖ − f·Tₖ:
/// ℓ −= log s₀, score −= s₁/s₀, information += s₂/s₀ − (s₁/s₀)(s₁/s₀)ᵀ, and the events' Σ η and
/// Σ x. Exponentials are shifted by each stratum's running maximum of η. O(n·d²).
public enum CoxInformation {
    /// One site's summary at `beta` (its rows are one stratum).
    public static func site(_ data: Dataset, beta: [Double], ties: Plan.Ties) -> InformationSummary {
        stratified(data, strata: [Int](repeating: 0, count: data.count), beta: beta, ties: ties)
    }

    /// The partial likelihood stratified by `strata` (one label ≥ 0 per row of `data`): each
    /// stratum's risk sets hold only its own rows. Equal to the sum of ``site(_:beta:ties:)`` over
    /// the strata's row sets.
    public static func stratified(_ data: Dataset, strata: [Int], beta: [Double], ties: Plan.Ties) -> InformationSummary {
        precondition(data.task == .survival && beta.count == data.dimension, "Cox information needs survival rows and one β per feature")
        precondition(strata.count == data.count && strata.allSatisfy { $0 >= 0 }, "one stratum ≥ 0 per row")
        let d = data.dimension
        let n = data.count
        var out = InformationSummary(dimension: d)
        out.rows = n
        guard n > 0 else { return out }
        let labels = Array(Set(strata)).sorted()
        var slot = [Int: Int]()
        for (k, s) in labels.enumerated() { slot[s] = k }
        let stratum = strata.map { slot[$0]! }
        struct Sums {
            var shift = -Double.infinity
            var s0 = 0.0
            var s1: [Double]
            var s2: [Double]
            init(_ d: Int) {
                s1 = [Double](repeating: 0, count: d)
                s2 = [Double](repeating: 0, count: d * d)
            }
        }
        var sums = [Sums](repeating: Sums(d), count: labels.count)
        var eta = [Double](repeating: 0, count: n)
        var x = [Double](repeating: 0, count: n * d)
        data.features.withUnsafeBufferPointer { f in
            for r in 0..<n {
                var e = 0.0
                for j in 0..<d {
                    let v = Double(f[r * d + j])
                    x[r * d + j] = v
                    e += v * beta[j]
                }
                eta[r] = e
            }
        }
        let order = data.descendingTimeOrder.map(Int.init)
        let times = data.times
        let events = data.events
        var t0 = 0.0
        var t1 = [Double](repeating: 0, count: d)
        var t2 = [Double](repeating: 0, count: d * d)
        var s1 = [Double](repeating: 0, count: d)
        var k = 0
        while k < n {
            let t = times[order[k]]
            var end = k
            while end < n && times[order[end]] == t { end += 1 }
            // The group of rows at time t, stratum by stratum.
            for s in Set((k..<end).map { stratum[order[$0]] }).sorted() {
                let members = (k..<end).map { order[$0] }.filter { stratum[$0] == s }
                let groupMax = members.map { eta[$0] }.max()!
                if groupMax > sums[s].shift {
                    if sums[s].shift > -.infinity {
                        let factor = exp(sums[s].shift - groupMax)
                        sums[s].s0 *= factor
                        for i in 0..<d { sums[s].s1[i] *= factor }
                        for i in 0..<(d * d) { sums[s].s2[i] *= factor }
                    }
                    sums[s].shift = groupMax
                }
                let shift = sums[s].shift
                t0 = 0
                for i in 0..<d { t1[i] = 0 }
                for i in 0..<(d * d) { t2[i] = 0 }
                var m = 0
                for r in members {
                    let w = exp(eta[r] - shift)
                    let isEvent = events[r] != 0
                    sums[s].s0 += w
                    if isEvent {
                        m += 1
                        t0 += w
                        out.logLikelihood += eta[r]
                    }
                    for i in 0..<d {
                        let wx = w * x[r * d + i]
                        sums[s].s1[i] += wx
                        if isEvent {
                            t1[i] += wx
                            out.score[i] += x[r * d + i]
                        }
                        for j in i..<d {
                            let v = wx * x[r * d + j]
                            sums[s].s2[i * d + j] += v
                            if isEvent { t2[i * d + j] += v }
                        }
                    }
                }
                guard m > 0 else { continue }
                out.events += m
                for l in 0..<m {
                    let f = ties == .efron ? Double(l) / Double(m) : 0
                    let s0 = sums[s].s0 - f * t0
                    out.logLikelihood -= log(s0) + shift
                    for i in 0..<d {
                        s1[i] = (sums[s].s1[i] - f * t1[i]) / s0
                        out.score[i] -= s1[i]
                    }
                    for i in 0..<d {
                        for j in i..<d {
                            out.information[i * d + j] += (sums[s].s2[i * d + j] - f * t2[i * d + j]) / s0 - s1[i] * s1[j]
                        }
                    }
                }
            }
            k = end
        }
        for i in 0..<d { for j in 0..<i { out.information[i * d + j] = out.information[j * d + i] } }
        return out
    }
}

/// Logistic regression in Float64 on standardized rows: θ = (w₁…w_d, b), ℓ = Σ y·η − log(1 + e^η),
/// score Σ (y − p)·x̃, information Σ p(1 − p)·x̃x̃ᵀ with x̃ = (x, 1). A sum over rows, so sites add.
public enum LogisticInformation {
    public static func site(_ data: Dataset, theta: [Double]) -> InformationSummary {
        let d = data.dimension
        precondition(data.task == .classification && theta.count == d + 1, "logistic information needs labelled rows and d + 1 parameters")
        let q = d + 1
        var out = InformationSummary(dimension: q)
        out.rows = data.count
        var xt = [Double](repeating: 1, count: q)
        data.features.withUnsafeBufferPointer { f in
            for r in 0..<data.count {
                var eta = theta[d]
                for j in 0..<d {
                    xt[j] = Double(f[r * d + j])
                    eta += xt[j] * theta[j]
                }
                let y = Double(data.labels[r])
                if y != 0 { out.events += 1 }
                // log(1 + e^η) without overflow.
                let softplus = eta > 0 ? eta + log1p(exp(-eta)) : log1p(exp(eta))
                out.logLikelihood += y * eta - softplus
                let p = 1 / (1 + exp(-eta))
                let w = p * (1 - p)
                for i in 0..<q {
                    out.score[i] += (y - p) * xt[i]
                    let wx = w * xt[i]
                    for j in i..<q { out.information[i * q + j] += wx * xt[j] }
                }
            }
        }
        for i in 0..<q { for j in 0..<i { out.information[i * q + j] = out.information[j * q + i] } }
        return out
    }
}

/// Dense symmetric positive-definite algebra for the small matrices of inference (d ≤ a few hundred).
public enum SymmetricSolve {
    /// The lower Cholesky factor L (row-major) of `a` = L·Lᵀ, or `nil` when `a` is not positive
    /// definite (or holds a non-finite value).
    public static func cholesky(_ a: [Double], dimension n: Int) -> [Double]? {
        precondition(a.count == n * n, "an n × n matrix")
        var l = [Double](repeating: 0, count: n * n)
        for i in 0..<n {
            for j in 0...i {
                var sum = a[i * n + j]
                for k in 0..<j { sum -= l[i * n + k] * l[j * n + k] }
                if i == j {
                    guard sum > 0, sum.isFinite else { return nil }
                    l[i * n + i] = sum.squareRoot()
                } else {
                    l[i * n + j] = sum / l[j * n + j]
                }
            }
        }
        return l
    }

    /// x with L·Lᵀ·x = b.
    public static func solve(factor l: [Double], dimension n: Int, _ b: [Double]) -> [Double] {
        var y = b
        for i in 0..<n {
            for k in 0..<i { y[i] -= l[i * n + k] * y[k] }
            y[i] /= l[i * n + i]
        }
        for i in stride(from: n - 1, through: 0, by: -1) {
            for k in (i + 1)..<n { y[i] -= l[k * n + i] * y[k] }
            y[i] /= l[i * n + i]
        }
        return y
    }

    /// (L·Lᵀ)⁻¹, row-major.
    public static func inverse(factor l: [Double], dimension n: Int) -> [Double] {
        var out = [Double](repeating: 0, count: n * n)
        var e = [Double](repeating: 0, count: n)
        for c in 0..<n {
            for i in 0..<n { e[i] = i == c ? 1 : 0 }
            let column = solve(factor: l, dimension: n, e)
            for r in 0..<n { out[r * n + c] = column[r] }
        }
        return out
    }
}
