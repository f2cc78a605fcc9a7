import Foundation
public import PlexusCore

/// A site's feature statistics released with the Gaussian mechanism under declared bounds: what
/// a private plan's statistics round sends instead of exact means and sums of squares.
///
/// **The query.** Each feature is clipped to its declared `[lower, upper]` and normalized to
/// u = (x − c) ÷ h ∈ [−1, 1], with c the midpoint and h the half-range. One vector sum is
/// released, f(D) = Σ_rows v(x) with v(x) = (γ₁u₁, …, γ₁u_d, γ₂w₁, …, γ₂w_d), where
/// w = u² − ½ ∈ [−½, ½] (centring the squares halves their range), γ₁² = 1 ÷ 2d and γ₂² = 2 ÷ d.
///
/// **Sensitivity 1 (add or remove one patient).** f(D ∪ {k}) − f(D) = v(x_k), and
/// ‖v‖² = Σ_j (γ₁²u_j² + γ₂²(u_j² − ½)²). Each term is convex in u_j² ∈ [0, 1], so it is largest
/// at an end: at u_j² = 1 it is γ₁² + γ₂²/4 = 1 ÷ d, at 0 it is γ₂²/4 = 1 ÷ 2d. So ‖v‖² ≤ 1, and
/// f(D) + N(0, σ_s² I) is the Gaussian mechanism with noise multiplier σ_s, whose Rényi DP is
/// α ÷ 2σ_s² (`RDPCurve.sampledGaussian(samplingRate: 1, noiseMultiplier: σ_s)`), charged once,
/// for all 2d coordinates jointly.
///
/// The count n is public (it sets the mixing weights; the convention of Opacus and TF Privacy):
/// the guarantee covers everything a site sends given n. Everything below — dividing by the γ's,
/// adding sites' sums, the clamps — is post-processing and costs nothing.
public struct ReleasedStatistics: Sendable, Hashable {
    /// n, exact (public).
    public var count: Double
    /// Σ u_j + noise, per feature (natural units of u).
    public var sums: [Double]
    /// Σ (u_j² − ½) + noise, per feature.
    public var centredSquares: [Double]

    public init(count: Double, sums: [Double], centredSquares: [Double]) {
        precondition(sums.count == centredSquares.count, "one sum and one sum of squares per feature")
        self.count = count
        self.sums = sums
        self.centredSquares = centredSquares
    }

    /// The floor of a released variance, in units of u (half-ranges squared): a noisy sum of
    /// squares can fall below the square of the noisy mean, and a scale near 0 would blow a
    /// feature up. 0.01 is a standard deviation of a tenth of the half-range.
    public static let minimumVariance = 0.01

    /// (γ₁, γ₂) for `dimension` features.
    public static func weights(dimension d: Int) -> (Double, Double) {
        ((1 / (2 * Double(d))).squareRoot(), (2 / Double(d)).squareRoot())
    }

    /// Releases `dataset`'s statistics: rows clipped to `bounds` (one per feature, in its
    /// order), noise N(0, σ_s²) on each coordinate of f, drawn from `generator`.
    public init(releasing dataset: Dataset, bounds: [Plan.FeatureBound], noiseMultiplier sigma: Double, generator: inout some RandomNumberGenerator) {
        let d = dataset.dimension
        precondition(bounds.count == d && d > 0, "one bound per feature")
        precondition(sigma > 0 && sigma.isFinite, "σ_s > 0")
        var sums = [Double](repeating: 0, count: d)
        var squares = [Double](repeating: 0, count: d)
        dataset.features.withUnsafeBufferPointer { x in
            for r in 0..<dataset.count {
                for j in 0..<d {
                    let u = Self.normalized(Double(x[r * d + j]), bounds[j])
                    sums[j] += u
                    squares[j] += u * u - 0.5
                }
            }
        }
        let (g1, g2) = Self.weights(dimension: d)
        var gaussian = GaussianSampler()
        // γ·Σ + σ_s·z, then ÷ γ: the same as Σ + (σ_s ÷ γ)·z.
        for j in 0..<d { sums[j] += sigma / g1 * gaussian.next(using: &generator) }
        for j in 0..<d { squares[j] += sigma / g2 * gaussian.next(using: &generator) }
        self.init(count: Double(dataset.count), sums: sums, centredSquares: squares)
    }

    /// x clipped to the bound and mapped to [−1, 1].
    static func normalized(_ x: Double, _ bound: Plan.FeatureBound) -> Double {
        let c = (bound.lower + bound.upper) / 2, h = (bound.upper - bound.lower) / 2
        let clipped = x.isNaN ? c : min(max(x, bound.lower), bound.upper)
        return min(max((clipped - c) / h, -1), 1)
    }

    /// The union of both sites' rows: sums add (no per-site clamping bias).
    public func merged(with other: ReleasedStatistics) -> ReleasedStatistics {
        ReleasedStatistics(
            count: count + other.count, sums: zip(sums, other.sums).map(+), centredSquares: zip(centredSquares, other.centredSquares).map(+)
        )
    }

    /// The same release counted `n` times (a site whose count the sample basis bounded, or a
    /// `sample-lie:N`): every sum scaled by n ÷ count, as ``FeatureStatistics/declaring(count:)``
    /// keeps means and variances.
    public func declaring(count n: Int) -> ReleasedStatistics {
        guard count > 0 else { return self }
        let factor = Double(n) / count
        return ReleasedStatistics(count: Double(n), sums: sums.map { $0 * factor }, centredSquares: centredSquares.map { $0 * factor })
    }

    /// Every site's release added, in the order of the sites' keys (the order every node and the
    /// simulator use).
    public static func pooled<Site: Comparable>(_ sites: [Site: ReleasedStatistics], dimension: Int) -> ReleasedStatistics {
        var total = ReleasedStatistics(count: 0, sums: .init(repeating: 0, count: dimension), centredSquares: .init(repeating: 0, count: dimension))
        for site in sites.keys.sorted() { total = total.merged(with: sites[site]!) }
        return total
    }

    /// The standardization of the pooled release, in feature units: mean c + h·clamp(S ÷ n, −1, 1),
    /// scale h·√var_u with var_u = (W + n/2) ÷ n − mean_u², clamped to
    /// [``minimumVariance``, max(``minimumVariance``, 1 − mean_u²)] (the largest variance of a
    /// value in [−1, 1] with that mean).
    public func standardization(bounds: [Plan.FeatureBound]) -> Standardization {
        precondition(bounds.count == sums.count, "one bound per feature")
        let n = max(count, 1)
        var mean = [Double](repeating: 0, count: sums.count)
        var scale = [Double](repeating: 1, count: sums.count)
        for j in sums.indices {
            let c = (bounds[j].lower + bounds[j].upper) / 2, h = (bounds[j].upper - bounds[j].lower) / 2
            let m = sums[j].isFinite ? min(max(sums[j] / n, -1), 1) : 0
            let second = centredSquares[j].isFinite ? (centredSquares[j] + n / 2) / n : 1
            let ceiling = max(Self.minimumVariance, 1 - m * m)
            let v = min(max(second - m * m, Self.minimumVariance), ceiling)
            mean[j] = c + h * m
            scale[j] = h * v.squareRoot()
        }
        return Standardization(mean: mean, scale: scale)
    }
}
