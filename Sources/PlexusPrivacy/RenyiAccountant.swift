#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The Rényi-DP curve of one mechanism, or of a composition: its RDP ε(α) at each order α of a
/// fixed order set. Composition adds curves order by order (Mironov 2017, Prop. 1), so the
/// accountant of a whole run is one curve.
///
/// The relation is add-or-remove-one (the convention of Opacus, TF Privacy and Google's
/// dp-accounting): two datasets are neighbours when one is the other with one patient added.
public struct RDPCurve: Sendable, Hashable, Codable {
    /// The orders α > 1 the curve is kept at.
    public let orders: [Double]
    /// ε(α) per order; `.infinity` where a mechanism has no finite bound at that order (or its
    /// series did not converge — the order is then left out of the conversion).
    public private(set) var values: [Double]

    /// The orders dp-accounting's RDP accountant uses by default (a fact, kept so the two compare
    /// order for order): 1.1 to 10.9 in steps of 0.1, every integer 11 to 63, then 128 to 1024.
    public static let defaultOrders: [Double] =
        (1..<100).map { 1 + Double($0) / 10 } + (11..<64).map(Double.init) + [128, 256, 512, 1024]

    /// The curve of a mechanism that releases nothing.
    public init(orders: [Double] = RDPCurve.defaultOrders) {
        precondition(orders.allSatisfy { $0 > 1 && $0.isFinite }, "Rényi orders are finite and > 1")
        self.orders = orders
        values = [Double](repeating: 0, count: orders.count)
    }

    /// The sampled Gaussian mechanism (Mironov, Talwar & Zhang 2019): each record enters the
    /// sum independently with probability `samplingRate` (Poisson sampling), every record's
    /// contribution is clipped to L2 norm C, and Gaussian noise of standard deviation
    /// `noiseMultiplier`·C is added to the sum. `samplingRate` 1 is the plain Gaussian mechanism
    /// with sensitivity C: ε(α) = α ÷ 2σ².
    public static func sampledGaussian(
        samplingRate q: Double, noiseMultiplier sigma: Double, orders: [Double] = RDPCurve.defaultOrders
    ) -> RDPCurve {
        precondition(q >= 0 && q <= 1 && sigma > 0 && sigma.isFinite, "q in [0, 1], σ finite and > 0")
        var curve = RDPCurve(orders: orders)
        for (i, alpha) in orders.enumerated() {
            curve.values[i] = SampledGaussian.rdp(order: alpha, samplingRate: q, noiseMultiplier: sigma)
        }
        return curve
    }

    /// This curve composed `count` times with itself.
    public func composed(_ count: Int) -> RDPCurve {
        precondition(count >= 0)
        var curve = self
        for i in values.indices where values[i] != 0 { curve.values[i] = values[i] * Double(count) }
        return curve
    }

    /// The composition of the two mechanisms (both curves on the same orders).
    public static func + (a: RDPCurve, b: RDPCurve) -> RDPCurve {
        precondition(a.orders == b.orders, "curves on different orders")
        var curve = a
        for i in curve.values.indices { curve.values[i] += b.values[i] }
        return curve
    }

    public static func += (a: inout RDPCurve, b: RDPCurve) { a = a + b }

    /// The smallest ε over the orders such that the mechanism is (ε, δ)-DP, and the order that
    /// gives it. The conversion at each order is the one of Canonne, Kamath & Steinke (2020,
    /// Prop. 12) and Balle et al. (2020, Thm. 21): ε = ε(α) + log(1 − 1/α) − (log δ + log α) ÷ (α − 1),
    /// tighter than Mironov's ε(α) + log(1/δ) ÷ (α − 1); an order with 1 − e^(−ε(α)) ≤ δ² gives
    /// ε = 0 (the KL bound); orders within 0.01 of 1 are left out (the bound is not stable there).
    public func epsilon(delta: Double) -> (epsilon: Double, order: Double) {
        precondition(delta > 0 && delta < 1, "δ in (0, 1)")
        var best = (epsilon: Double.infinity, order: Double.nan)
        for (alpha, r) in zip(orders, values) where r.isFinite && r >= 0 {
            let e: Double
            if delta * delta + expm1(-r) > 0 {
                e = 0
            } else if alpha > 1.01 {
                e = r + log1p(-1 / alpha) - log(delta * alpha) / (alpha - 1)
            } else {
                continue
            }
            if e < best.epsilon { best = (e, alpha) }
        }
        return (max(0, best.epsilon), best.order)
    }
}

/// The RDP of the sampled Gaussian mechanism at one order, computed in log space.
enum SampledGaussian {
    /// ε(α) for sampling rate q and noise multiplier σ: log(A_α) ÷ (α − 1), with A_α the α-th moment
    /// of the privacy loss (Mironov, Talwar & Zhang 2019, Sec. 3.3). `.infinity` when the series
    /// for a fractional order does not converge within its term limit.
    static func rdp(order alpha: Double, samplingRate q: Double, noiseMultiplier sigma: Double) -> Double {
        if q == 0 { return 0 }
        if q == 1 { return alpha / (2 * sigma * sigma) }
        let logA = alpha.rounded() == alpha && alpha < 1e6 ? logAInteger(Int(alpha), q, sigma) : logAFractional(alpha, q, sigma)
        guard let logA, logA.isFinite else { return .infinity }
        return max(0, logA) / (alpha - 1)
    }

    /// Integer α: A_α = Σ_{k=0}^{α} C(α, k) (1−q)^(α−k) q^k exp((k² − k) ÷ 2σ²), every term positive.
    static func logAInteger(_ alpha: Int, _ q: Double, _ sigma: Double) -> Double? {
        var sum = LogSum()
        let logQ = log(q), log1mQ = log1p(-q)
        for k in 0...alpha {
            let kk = Double(k)
            sum.add(logBinomial(Double(alpha), k) + kk * logQ + Double(alpha - k) * log1mQ + (kk * kk - kk) / (2 * sigma * sigma), sign: 1)
        }
        return sum.logValue
    }

    /// The most terms a fractional order's series is summed to before the order is given up: its
    /// terms fall only like k^(−α−1), so orders near 1 converge slowly (dp-accounting gives them
    /// up at the same point).
    static let termLimit = 1000

    /// Fractional α: A_α = A₀ + A₁ with z₀ = σ² log(1/q − 1) + ½ and the generalised binomial
    /// C(α, k) (its sign alternates once k > α):
    ///   A₀ = Σ_k C(α, k) q^k (1−q)^(α−k) exp((k² − k) ÷ 2σ²) · ½ erfc((k − z₀) ÷ √2σ)
    ///   A₁ = Σ_k C(α, k) q^(α−k) (1−q)^k exp(((α−k)² − (α−k)) ÷ 2σ²) · ½ erfc((z₀ − (α−k)) ÷ √2σ)
    /// Each term is added by its magnitude |C(α, k)|: the sum is then an upper bound on A_α
    /// (|Σ t| ≤ Σ |t|), so ε is never understated by a cancellation in floating point — the
    /// convention of dp-accounting 0.6, which this accountant is checked against. The sum stops
    /// when both terms are falling and below e^(−30) of the running total.
    static func logAFractional(_ alpha: Double, _ q: Double, _ sigma: Double) -> Double? {
        var sum = LogSum()
        let logQ = log(q), log1mQ = log1p(-q)
        let z0 = sigma * sigma * log(1 / q - 1) + 0.5
        let root2Sigma = 2.0.squareRoot() * sigma
        var logCoefficient = 0.0  // log |C(α, k)|
        var previous = (s0: Double.infinity, s1: Double.infinity)
        for k in 0..<termLimit {
            let i = Double(k)
            let j = alpha - i
            let s0 = logCoefficient + i * logQ + j * log1mQ + (i * i - i) / (2 * sigma * sigma) + log(0.5) + logErfc((i - z0) / root2Sigma)
            let s1 = logCoefficient + j * logQ + i * log1mQ + (j * j - j) / (2 * sigma * sigma) + log(0.5) + logErfc((z0 - j) / root2Sigma)
            sum.add(s0, sign: 1)
            sum.add(s1, sign: 1)
            if let total = sum.logValue, s0 < previous.s0, s1 < previous.s1, max(s0, s1) < total - 30 { return total }
            previous = (s0, s1)
            // |C(α, k+1)| = |C(α, k)| · |α − k| ÷ (k + 1)
            let factor = abs(alpha - i) / (i + 1)
            if factor == 0 { return sum.logValue }
            logCoefficient += log(factor)
        }
        return nil
    }

    /// log C(n, k) for real n ≥ k ≥ 0 (integer k).
    static func logBinomial(_ n: Double, _ k: Int) -> Double {
        lgamma(n + 1) - lgamma(Double(k) + 1) - lgamma(n - Double(k) + 1)
    }

    /// log erfc(x), accurate where erfc underflows (x ≳ 26): there the asymptotic series
    /// erfc(x) ≈ e^(−x²) ÷ (x√π) · (1 − 1/2x² + 3/4x⁴ − 15/8x⁶).
    static func logErfc(_ x: Double) -> Double {
        if x < 25 { return log(erfc(x)) }
        let x2 = x * x
        return -x2 - log(x) - 0.5 * log(Double.pi) + log1p(-1 / (2 * x2) + 3 / (4 * x2 * x2) - 15 / (8 * x2 * x2 * x2))
    }
}

/// Σ sign·e^(term), kept as a running maximum and a scaled sum so that nothing overflows.
struct LogSum {
    private var maximum = -Double.infinity
    private var scaled = 0.0

    mutating func add(_ logTerm: Double, sign: Double) {
        guard logTerm.isFinite else { return }
        if logTerm > maximum {
            scaled = scaled * exp(maximum - logTerm) + sign
            maximum = logTerm
        } else {
            scaled += sign * exp(logTerm - maximum)
        }
    }

    /// log of the sum; nil when it is not positive (the series has not settled).
    var logValue: Double? {
        guard scaled > 0, maximum.isFinite else { return nil }
        return maximum + log(scaled)
    }
}
