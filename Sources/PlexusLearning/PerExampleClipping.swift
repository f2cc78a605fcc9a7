public import PlexusCore

/// The clipped gradient sum DP-SGD needs (Abadi et al. 2016): every row's gradient of its own
/// loss term, scaled down to L2 norm at most C, summed over the batch. Adding or removing one row
/// changes the sum by at most C in L2 — the sensitivity the Gaussian noise is calibrated to.
///
/// Only a loss that is a sum of per-row terms has such a decomposition: the logistic loss (with
/// either model). The Cox partial likelihood couples rows through their risk sets, so its models
/// answer nil.
public protocol PerExampleClipping: Model {
    /// Σᵢ clip_C(∇ℓᵢ) over the rows of `batch` into `sum` (overwritten), with ℓᵢ row i's data loss
    /// (no penalty: it depends on no row), clip_C(g) = g·min(1, C ÷ ‖g‖). Returns the sum of the
    /// rows' losses and how many rows were scaled down, or nil when the loss does not decompose
    /// by rows.
    func clippedGradientSum(
        parameters: UnsafeBufferPointer<Float>, batch: Dataset, clip: Float, into sum: UnsafeMutableBufferPointer<Float>
    ) -> (loss: Double, clipped: Int)?
}

extension PerExampleClipping {
    /// Array convenience; resizes `sum` if needed.
    public func clippedGradientSum(parameters: [Float], batch: Dataset, clip: Float, into sum: inout [Float]) -> (loss: Double, clipped: Int)? {
        if sum.count != layout.count { sum = [Float](repeating: 0, count: layout.count) }
        return parameters.withUnsafeBufferPointer { p in
            sum.withUnsafeMutableBufferPointer { clippedGradientSum(parameters: p, batch: batch, clip: clip, into: $0) }
        }
    }
}

/// The factor that scales a gradient of norm √`normSquared` to norm at most `clip`.
@inline(__always)
func clipFactor(normSquared: Double, clip: Float) -> Float {
    let limit = Double(clip) * Double(clip)
    return normSquared > limit ? Float((limit / normSquared).squareRoot()) : 1
}

extension LogisticRegression: PerExampleClipping {
    /// Row i's gradient is rᵢ·(xᵢ, 1) with rᵢ = σ(ηᵢ) − yᵢ, of norm |rᵢ|·√(‖xᵢ‖² + 1): clipping
    /// scales the residual, so the clipped sum is the batch gradient's kernel on scaled residuals.
    public func clippedGradientSum(
        parameters: UnsafeBufferPointer<Float>, batch: Dataset, clip: Float, into sum: UnsafeMutableBufferPointer<Float>
    ) -> (loss: Double, clipped: Int)? {
        precondition(batch.task == .classification && batch.dimension == dimension, "batch does not fit the model")
        precondition(parameters.count == layout.count && sum.count == layout.count, "parameter count mismatch")
        precondition(clip > 0, "the clip norm must be > 0")
        let d = dimension
        var accumulated = [Double](repeating: 0, count: d + 1)
        var clipped = 0
        let loss = residualPass(parameters: parameters, batch: batch, into: &accumulated) { x, residuals, count in
            for i in 0..<count {
                let xi = x + i * d
                let r = Double(residuals[i])
                let f = clipFactor(normSquared: r * r * (Double(Kernels.dot(xi, xi, d)) + 1), clip: clip)
                if f < 1 { clipped += 1 }
                residuals[i] *= f
            }
        }
        for j in 0...d { sum[j] = Float(accumulated[j]) }
        return (loss, clipped)
    }
}
