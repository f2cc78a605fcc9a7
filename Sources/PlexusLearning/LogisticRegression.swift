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
        let bias = parameters[d]
        // The weights and the Float32 block accumulator padded with zeros to a multiple of eight, so
        // a row's dot product and update are whole SIMD8 loads with no scalar tail. The last chunk of
        // a row then reads up to seven floats of the next row, which the zero weights cancel and
        // the padding lanes of the block absorb; rows whose last chunk would read past the end of
        // the matrix take the scalar path.
        let padded = (d + 7) & ~7
        var weights = [Float](repeating: 0, count: padded)
        for j in 0..<d { weights[j] = parameters[j] }
        var block = [Float](repeating: 0, count: padded)
        let safeRows = n * d < padded ? 0 : min(n, (n * d - padded) / d + 1)
        batch.features.withUnsafeBufferPointer { xs in
            batch.labels.withUnsafeBufferPointer { ys in
                weights.withUnsafeBufferPointer { wb in
                    block.withUnsafeMutableBufferPointer { bb in
                        accumulated.withUnsafeMutableBufferPointer { acc in
                            let x = xs.baseAddress!
                            let w = UnsafeRawPointer(wb.baseAddress!)
                            let g = UnsafeMutableRawPointer(bb.baseAddress!)
                            let chunks = padded / 8
                            var row = 0
                            while row < n {
                                let end = min(row + Kernels.blockRows, n)
                                var blockLoss: Float = 0
                                var blockBias: Float = 0
                                var i = row
                                // Eight rows at a time: eight dot products, the loss and residuals
                                // of all eight in SIMD (exp and log1p vectorised), eight updates.
                                while i + 8 <= min(end, safeRows) {
                                    // Four rows at a time, chunk by chunk, so each chunk of the
                                    // weights is loaded once per four rows.
                                    @inline(__always) func dots(_ k: Int) -> SIMD4<Float> {
                                        let x0 = UnsafeRawPointer(x + (i + k) * d)
                                        let stride = d * 4
                                        var a0 = SIMD8<Float>()
                                        var a1 = SIMD8<Float>()
                                        var a2 = SIMD8<Float>()
                                        var a3 = SIMD8<Float>()
                                        for c in 0..<chunks {
                                            let o = c * 32
                                            let wc = w.load(fromByteOffset: o, as: SIMD8<Float>.self)
                                            a0 += x0.loadUnaligned(fromByteOffset: o, as: SIMD8<Float>.self) * wc
                                            a1 += x0.loadUnaligned(fromByteOffset: o + stride, as: SIMD8<Float>.self) * wc
                                            a2 += x0.loadUnaligned(fromByteOffset: o + 2 * stride, as: SIMD8<Float>.self) * wc
                                            a3 += x0.loadUnaligned(fromByteOffset: o + 3 * stride, as: SIMD8<Float>.self) * wc
                                        }
                                        return SIMD4(a0.sum(), a1.sum(), a2.sum(), a3.sum())
                                    }
                                    // Built from whole vectors: inserting lanes one by one goes
                                    // through memory and stalls on store forwarding.
                                    let eta = SIMD8<Float>(lowHalf: dots(0), highHalf: dots(4)) + bias
                                    let y = UnsafeRawPointer(ys.baseAddress! + i).loadUnaligned(as: SIMD8<Float>.self)
                                    let (l, r) = Kernels.logisticLoss8(eta, y)
                                    blockLoss += l.sum()
                                    blockBias += r.sum()
                                    // The update chunk by chunk over the eight rows, so each chunk of
                                    // the block is loaded and stored once per eight rows.
                                    let x0 = UnsafeRawPointer(x + i * d)
                                    let stride = d * 4
                                    for c in 0..<chunks {
                                        let o = c * 32
                                        var v = g.load(fromByteOffset: o, as: SIMD8<Float>.self)
                                        v += r[0] * x0.loadUnaligned(fromByteOffset: o, as: SIMD8<Float>.self)
                                        v += r[1] * x0.loadUnaligned(fromByteOffset: o + stride, as: SIMD8<Float>.self)
                                        v += r[2] * x0.loadUnaligned(fromByteOffset: o + 2 * stride, as: SIMD8<Float>.self)
                                        v += r[3] * x0.loadUnaligned(fromByteOffset: o + 3 * stride, as: SIMD8<Float>.self)
                                        v += r[4] * x0.loadUnaligned(fromByteOffset: o + 4 * stride, as: SIMD8<Float>.self)
                                        v += r[5] * x0.loadUnaligned(fromByteOffset: o + 5 * stride, as: SIMD8<Float>.self)
                                        v += r[6] * x0.loadUnaligned(fromByteOffset: o + 6 * stride, as: SIMD8<Float>.self)
                                        v += r[7] * x0.loadUnaligned(fromByteOffset: o + 7 * stride, as: SIMD8<Float>.self)
                                        g.storeBytes(of: v, toByteOffset: o, as: SIMD8<Float>.self)
                                    }
                                    i += 8
                                }
                                while i < end {
                                    let xi = x + i * d
                                    let eta = Kernels.dot(wb.baseAddress!, xi, d) + bias
                                    let (l, r) = Kernels.logisticLoss(eta, ys[i])
                                    blockLoss += l
                                    blockBias += r
                                    Kernels.axpy(r, xi, bb.baseAddress!, d)
                                    i += 1
                                }
                                for j in 0..<d {
                                    acc[j] += Double(bb[j])
                                }
                                for j in 0..<padded { bb[j] = 0 }
                                acc[d] += Double(blockBias)
                                loss += Double(blockLoss)
                                row = end
                            }
                        }
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
