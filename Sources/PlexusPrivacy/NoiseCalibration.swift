/// The noise a plan needs for a target ε: the smallest noise multiplier σ whose run — `steps`
/// sampled Gaussian steps at rate q, composed with `fixed` (the other releases the budget
/// pays for, e.g. the statistics round) — is (ε, δ)-DP.
public enum NoiseCalibration {
    /// σ to a relative precision of 1e-6, or nil when no σ ≤ 10⁴ reaches the target (e.g. `fixed`
    /// alone already spends more than ε).
    public static func noiseMultiplier(
        epsilon target: Double, delta: Double, samplingRate q: Double, steps: Int,
        fixed: RDPCurve = RDPCurve(), orders: [Double] = RDPCurve.defaultOrders
    ) -> Double? {
        precondition(target > 0 && target.isFinite && steps >= 0)
        func spent(_ sigma: Double) -> Double {
            (fixed + RDPCurve.sampledGaussian(samplingRate: q, noiseMultiplier: sigma, orders: orders).composed(steps)).epsilon(delta: delta).epsilon
        }
        var high = 1.0
        while spent(high) > target {
            high *= 2
            if high > 1e4 { return nil }
        }
        var low = high / 2
        while low > 1e-3 && spent(low) <= target { high = low; low /= 2 }
        // ε falls as σ grows: keep spent(low) > target ≥ spent(high).
        while (high - low) > 1e-6 * high {
            let middle = (low + high) / 2
            if spent(middle) > target { low = middle } else { high = middle }
        }
        return high
    }
}
