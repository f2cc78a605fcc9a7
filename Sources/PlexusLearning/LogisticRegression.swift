/// Logistic regression: p(y = 1 | x) = σ(w·x + b).
///
/// Layout: `weight` [d] (penalised), `bias` [1] (not penalised). Loss: mean log-loss.
/// One pass over the rows per gradient: the dot product, the residual and the update of the
/// gradient happen while the row is in cache.
public struct LogisticRegression: Model {
    public let dimension: Int
    public let layout: ParameterLayout
    public var task: Task { .classification }

    public init(dimension: Int) {
        precondition(dimension > 0, "a model needs at least one feature")
        self.dimension = dimension
        self.layout = ParameterLayout([("weight", [dimension], true), ("bias", [1], false)])
    }

    public func initialParameters(using generator: inout Xoshiro256) -> [Float] {
        [Float](repeating: 0, count: layout.count)
    }

    public func lossAndGradient(
        parameters: UnsafeBufferPointer<Float>, batch: Dataset, gradient: UnsafeMutableBufferPointer<Float>
    ) -> Double {
        precondition(batch.task == .classification && batch.dimension == dimension, "batch does not fit the model")
        precondition(parameters.count == layout.count && gradient.count == layout.count, "parameter count mismatch")
        let d = dimension
        let n = batch.count
        guard n > 0 else {
            for i in 0..<gradient.count { gradient[i] = 0 }
            return 0
        }
        var accumulated = [Double](repeating: 0, count: d + 1)
        let loss = residualPass(parameters: parameters, batch: batch, into: &accumulated, adjust: nil)
        let scale = 1 / Double(n)
        for j in 0...d { gradient[j] = Float(accumulated[j] * scale) }
        return loss * scale
    }

    /// One pass over `batch`'s rows, shared by the gradient and by DP-SGD's clipped sum. Blocks of
    /// 256 rows (30 KB at 30 features: they stay in L1/L2 between the two passes): the log-odds of
    /// the block, its losses and residuals eight at a time in SIMD, then `adjust` may rewrite the
    /// block's residuals in place (given the block's rows and its row count), then the gradient
    /// update X_blockᵀ·r into `accumulated` (d weights, then the bias). Returns the summed loss.
    func residualPass(
        parameters: UnsafeBufferPointer<Float>, batch: Dataset, into accumulated: inout [Double],
        adjust: ((_ rows: UnsafePointer<Float>, _ residuals: UnsafeMutablePointer<Float>, _ count: Int) -> Void)?
    ) -> Double {
        let d = dimension
        let n = batch.count
        var loss = 0.0
        let blockRows = Kernels.blockRows
        var eta = [Float](repeating: 0, count: blockRows + 8)
        var residual = [Float](repeating: 0, count: blockRows + 8)
        batch.features.withUnsafeBufferPointer { xs in
            batch.labels.withUnsafeBufferPointer { ys in
                eta.withUnsafeMutableBufferPointer { eb in
                    residual.withUnsafeMutableBufferPointer { rb in
                        accumulated.withUnsafeMutableBufferPointer { acc in
                            var row = 0
                            while row < n {
                                let count = min(blockRows, n - row)
                                let x = xs.baseAddress! + row * d
                                LinearKernels.predict(
                                    x: x, rows: count, dimension: d, weights: parameters.baseAddress!, bias: parameters[d],
                                    into: eb.baseAddress!)
                                let (blockLoss, blockBias) = Kernels.logisticResiduals(
                                    eta: eb.baseAddress!, labels: ys.baseAddress! + row, count: count, residuals: rb.baseAddress!)
                                loss += blockLoss
                                if let adjust {
                                    adjust(x, rb.baseAddress!, count)
                                    for i in 0..<count { acc[d] += Double(rb[i]) }
                                } else {
                                    acc[d] += blockBias
                                }
                                LinearKernels.accumulateTransposed(
                                    x: x, rows: count, dimension: d, residuals: rb.baseAddress!, into: acc.baseAddress!)
                                row += count
                            }
                        }
                    }
                }
            }
        }
        return loss
    }

    public func predict(parameters: UnsafeBufferPointer<Float>, batch: Dataset, into output: UnsafeMutableBufferPointer<Float>) {
        precondition(batch.dimension == dimension && output.count >= batch.count, "batch does not fit the model")
        let d = dimension
        batch.features.withUnsafeBufferPointer { xs in
            for i in 0..<batch.count {
                let eta = Kernels.dot(parameters.baseAddress!, xs.baseAddress! + i * d, d) + parameters[d]
                output[i] = Float(Kernels.sigmoid(Double(eta)))
            }
        }
    }
}
