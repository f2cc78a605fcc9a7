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
        var loss = 0.0
        let w = parameters.baseAddress!
        let bias = parameters[d]
        let block = gradient.baseAddress!
        for i in 0..<(d + 1) { block[i] = 0 }
        batch.features.withUnsafeBufferPointer { xs in
            batch.labels.withUnsafeBufferPointer { ys in
                accumulated.withUnsafeMutableBufferPointer { acc in
                    let x = xs.baseAddress!
                    var row = 0
                    while row < n {
                        let end = min(row + Kernels.blockRows, n)
                        var blockLoss: Float = 0
                        var blockBias: Float = 0
                        var i = row
                        // Eight rows at a time: eight dot products, the loss and residuals of all
                        // eight in SIMD (exp and log1p vectorised), then eight updates of the gradient.
                        while i + 8 <= end {
                            var eta = SIMD8<Float>(repeating: bias)
                            for k in 0..<8 { eta[k] += Kernels.dot(w, x + (i + k) * d, d) }
                            let y = UnsafeRawPointer(ys.baseAddress! + i).loadUnaligned(as: SIMD8<Float>.self)
                            let (l, r) = Kernels.logisticLoss8(eta, y)
                            blockLoss += l.sum()
                            blockBias += r.sum()
                            for k in 0..<8 { Kernels.axpy(r[k], x + (i + k) * d, block, d) }
                            i += 8
                        }
                        while i < end {
                            let xi = x + i * d
                            let eta = Kernels.dot(w, xi, d) + bias
                            let (l, r) = Kernels.logisticLoss(eta, ys[i])
                            blockLoss += l
                            blockBias += r
                            Kernels.axpy(r, xi, block, d)
                            i += 1
                        }
                        for j in 0..<d {
                            acc[j] += Double(block[j])
                            block[j] = 0
                        }
                        acc[d] += Double(blockBias)
                        loss += Double(blockLoss)
                        row = end
                    }
                }
            }
        }
        let scale = 1 / Double(n)
        for j in 0...d { gradient[j] = Float(accumulated[j] * scale) }
        return loss * scale
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
