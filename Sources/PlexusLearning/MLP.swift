public import PlexusCore

/// A multilayer perceptron with one or two ReLU hidden layers and a scalar output:
/// - with a ``Head/logistic`` head, a binary classifier (output σ(o), mean log-loss);
/// - with a ``Head/cox(_:)`` head, DeepSurv (output o is the log-risk, loss ``CoxLoss``).
///
/// Layout, in order: `hidden1.weight` [h₁, d], `hidden1.bias` [h₁], (`hidden2.weight` [h₂, h₁],
/// `hidden2.bias` [h₂],) `output.weight` [1, h], and for the classifier `output.bias` [1] (a Cox
/// model has no intercept). Weights are penalised by L2, biases are not. Initialisation is
/// PyTorch's `nn.Linear` default: weights and biases uniform in ±1/√fan_in.
public struct MLP: Model {
    public enum Head: Sendable, Hashable {
        case logistic
        case cox(Plan.Ties)
    }

    public let dimension: Int
    public let hidden: [Int]
    public let head: Head
    public let layout: ParameterLayout
    public var task: Task { head == .logistic ? .classification : .survival }

    /// - Precondition: one or two hidden layers, each of width ≥ 1.
    public init(dimension: Int, hidden: [Int], head: Head) {
        precondition(dimension > 0, "a model needs at least one feature")
        precondition((1...2).contains(hidden.count) && hidden.allSatisfy { $0 > 0 }, "one or two hidden layers of width ≥ 1")
        self.dimension = dimension
        self.hidden = hidden
        self.head = head
        var layout = ParameterLayout()
        var fanIn = dimension
        for (l, width) in hidden.enumerated() {
            layout.append("hidden\(l + 1).weight", shape: [width, fanIn], penalized: true)
            layout.append("hidden\(l + 1).bias", shape: [width], penalized: false)
            fanIn = width
        }
        layout.append("output.weight", shape: [1, fanIn], penalized: true)
        if head == .logistic { layout.append("output.bias", shape: [1], penalized: false) }
        self.layout = layout
    }

    public func initialParameters(using generator: inout Xoshiro256) -> [Float] {
        var p = [Float](repeating: 0, count: layout.count)
        for tensor in layout.tensors {
            let bound = 1 / Double(layerFanIn(of: tensor.name)).squareRoot()
            for i in tensor.range { p[i] = Float((2 * generator.nextUnit() - 1) * bound) }
        }
        return p
    }

    private func layerFanIn(of name: String) -> Int {
        if name.hasPrefix("output") { return hidden.last! }
        if name.hasPrefix("hidden1") { return dimension }
        return hidden[0]
    }

    /// Offsets of layer l's weight and bias (l = hidden.count is the output layer).
    fileprivate func offsets(_ l: Int) -> (weight: Int, bias: Int?) {
        let base = l < hidden.count ? "hidden\(l + 1)" : "output"
        return (layout["\(base).weight"]!.offset, layout["\(base).bias"]?.offset)
    }

    public func lossAndGradient(
        parameters: UnsafeBufferPointer<Float>, batch: Dataset, gradient: UnsafeMutableBufferPointer<Float>
    ) -> Double {
        precondition(batch.task == task && batch.dimension == dimension, "batch does not fit the model")
        precondition(parameters.count == layout.count && gradient.count == layout.count, "parameter count mismatch")
        let n = batch.count
        for i in 0..<gradient.count { gradient[i] = 0 }
        guard n > 0 else { return 0 }
        let pass = PaddedPass(model: self, parameters: parameters.baseAddress!)
        var out = [Float](repeating: 0, count: n)
        var dOut = [Float](repeating: 0, count: n)
        out.withUnsafeMutableBufferPointer { pass.forward(batch, into: $0.baseAddress!) }

        // Loss and ∂loss/∂output.
        var loss = 0.0
        switch head {
        case .logistic:
            let scale = 1 / Float(n)
            for i in 0..<n {
                let (l, r) = Kernels.logisticLoss(out[i], batch.labels[i])
                loss += Double(l)
                dOut[i] = r * scale
            }
            loss /= Double(n)
        case .cox(let ties):
            loss = out.withUnsafeBufferPointer { o in
                dOut.withUnsafeMutableBufferPointer { CoxLoss.lossAndGradient(eta: o, batch: batch, ties: ties, dEta: $0) }
            }
        }
        dOut.withUnsafeBufferPointer { pass.backward(batch, dOut: $0.baseAddress!, into: gradient.baseAddress!) }
        return loss
    }

    public func predict(parameters: UnsafeBufferPointer<Float>, batch: Dataset, into output: UnsafeMutableBufferPointer<Float>) {
        precondition(batch.dimension == dimension && output.count >= batch.count, "batch does not fit the model")
        guard batch.count > 0 else { return }
        let pass = PaddedPass(model: self, parameters: parameters.baseAddress!)
        pass.forward(batch, into: output.baseAddress!)
        if head == .logistic {
            for i in 0..<batch.count { output[i] = Float(Kernels.sigmoid(Double(output[i]))) }
        }
    }
}

/// Forward and backward passes of an ``MLP``, a block of rows at a time, on buffers whose rows are
/// padded with zeros to a multiple of eight floats, so every dot product and update is whole SIMD8
/// chunks: the block's inputs (B × d̄), each layer's activations (B × h̄), the weights (h × fan-in̄)
/// and their gradients. Padding lanes stay zero through ReLU, so they contribute nothing.
///
/// Blocks of ``blockRows`` rows keep every buffer in cache and the memory use independent of n.
/// The backward pass recomputes each block's activations (the Cox loss needs every output
/// before any gradient), which costs one more forward pass and no allocation per row.
private final class PaddedPass {
    static let blockRows = 128
    let model: MLP
    /// True widths [d, h₁, (h₂)] and padded strides.
    let widths: [Int]
    let strides: [Int]
    let input: UnsafeMutablePointer<Float>
    var activations: [UnsafeMutablePointer<Float>] = []
    var weights: [UnsafeMutablePointer<Float>] = []
    var biases: [UnsafeMutablePointer<Float>] = []
    let outputWeights: UnsafeMutablePointer<Float>
    let outputBias: Float

    init(model: MLP, parameters: UnsafePointer<Float>) {
        self.model = model
        let widths = [model.dimension] + model.hidden
        let strides = widths.map { ($0 + 7) & ~7 }
        self.widths = widths
        self.strides = strides
        let b = Self.blockRows
        input = .allocate(capacity: b * strides[0])
        input.initialize(repeating: 0, count: b * strides[0])
        for l in 0..<model.hidden.count {
            let fanIn = widths[l]
            let width = widths[l + 1]
            let act = UnsafeMutablePointer<Float>.allocate(capacity: b * strides[l + 1])
            act.initialize(repeating: 0, count: b * strides[l + 1])
            activations.append(act)
            let w = UnsafeMutablePointer<Float>.allocate(capacity: width * strides[l])
            w.initialize(repeating: 0, count: width * strides[l])
            let (wo, bo) = model.offsets(l)
            for k in 0..<width { (w + k * strides[l]).update(from: parameters + wo + k * fanIn, count: fanIn) }
            weights.append(w)
            let bias = UnsafeMutablePointer<Float>.allocate(capacity: width)
            bias.initialize(from: parameters + bo!, count: width)
            biases.append(bias)
        }
        let last = strides[model.hidden.count]
        outputWeights = .allocate(capacity: last)
        outputWeights.initialize(repeating: 0, count: last)
        let (wo, bo) = model.offsets(model.hidden.count)
        outputWeights.update(from: parameters + wo, count: widths[model.hidden.count])
        outputBias = bo.map { parameters[$0] } ?? 0
    }

    deinit {
        input.deallocate()
        for p in activations + weights + biases { p.deallocate() }
        outputWeights.deallocate()
    }

    @inline(__always)
    private static func load(_ p: UnsafePointer<Float>, _ chunk: Int) -> SIMD8<Float> {
        UnsafeRawPointer(p).load(fromByteOffset: chunk * 32, as: SIMD8<Float>.self)
    }

    @inline(__always)
    private static func store(_ v: SIMD8<Float>, _ p: UnsafeMutablePointer<Float>, _ chunk: Int) {
        UnsafeMutableRawPointer(p).storeBytes(of: v, toByteOffset: chunk * 32, as: SIMD8<Float>.self)
    }

    /// The outputs of every row of `batch`.
    func forward(_ batch: Dataset, into output: UnsafeMutablePointer<Float>) {
        var start = 0
        while start < batch.count {
            let rows = min(Self.blockRows, batch.count - start)
            forwardBlock(batch, start: start, rows: rows, output: output + start)
            start += rows
        }
    }

    /// Loads rows `start ..< start + rows` into the padded input block and runs every layer.
    private func forwardBlock(_ batch: Dataset, start: Int, rows: Int, output: UnsafeMutablePointer<Float>?) {
        let d = model.dimension
        batch.features.withUnsafeBufferPointer { x in
            for i in 0..<rows { (input + i * strides[0]).update(from: x.baseAddress! + (start + i) * d, count: d) }
        }
        for l in 0..<model.hidden.count {
            let source = l == 0 ? input : activations[l - 1]
            let inStride = strides[l]
            let outStride = strides[l + 1]
            let width = widths[l + 1]
            let chunks = inStride / 8
            let w = weights[l]
            let b = biases[l]
            let act = activations[l]
            for i in 0..<rows {
                let xi = source + i * inStride
                let ai = act + i * outStride
                var k = 0
                // Four units at a time: each input chunk is loaded once for four weight rows.
                while k + 4 <= width {
                    var a0 = SIMD8<Float>()
                    var a1 = SIMD8<Float>()
                    var a2 = SIMD8<Float>()
                    var a3 = SIMD8<Float>()
                    let w0 = w + k * inStride
                    for c in 0..<chunks {
                        let xc = Self.load(xi, c)
                        a0 += xc * Self.load(w0, c)
                        a1 += xc * Self.load(w0 + inStride, c)
                        a2 += xc * Self.load(w0 + 2 * inStride, c)
                        a3 += xc * Self.load(w0 + 3 * inStride, c)
                    }
                    ai[k] = max(a0.sum() + b[k], 0)
                    ai[k + 1] = max(a1.sum() + b[k + 1], 0)
                    ai[k + 2] = max(a2.sum() + b[k + 2], 0)
                    ai[k + 3] = max(a3.sum() + b[k + 3], 0)
                    k += 4
                }
                while k < width {
                    var a = SIMD8<Float>()
                    for c in 0..<chunks { a += Self.load(xi, c) * Self.load(w + k * inStride, c) }
                    ai[k] = max(a.sum() + b[k], 0)
                    k += 1
                }
            }
        }
        guard let output else { return }
        let last = activations[model.hidden.count - 1]
        let stride = strides[model.hidden.count]
        let chunks = stride / 8
        for i in 0..<rows {
            var a = SIMD8<Float>()
            for c in 0..<chunks { a += Self.load(last + i * stride, c) * Self.load(outputWeights, c) }
            output[i] = a.sum() + outputBias
        }
    }

    /// Back-propagates ∂loss/∂output (one per row of `batch`) into `gradient`, in the model's
    /// unpadded layout. Per-block Float32 sums are folded into Double accumulators.
    ///
    /// With `rowNormsSquared`, it also writes each row's squared gradient norm, layer by layer
    /// without forming the row's gradient: a dense layer's weight gradient for one row is the
    /// outer product δ ⊗ a of its δ and its input, whose squared norm is ‖δ‖²·‖a‖², and its bias
    /// gradient is δ (Goodfellow 2015). With `accumulate` false, only those norms are computed.
    func backward(
        _ batch: Dataset, dOut: UnsafePointer<Float>, into gradient: UnsafeMutablePointer<Float>,
        rowNormsSquared: UnsafeMutablePointer<Double>? = nil, accumulate: Bool = true
    ) {
        let layers = model.hidden.count
        let b = Self.blockRows
        let lastStride = strides[layers]
        let maxStride = strides.max()!
        // Float32 block accumulators, Double totals, δ buffers.
        var gW: [UnsafeMutablePointer<Float>] = []
        var gB: [UnsafeMutablePointer<Float>] = []
        for l in 0..<layers {
            gW.append(.allocate(capacity: widths[l + 1] * strides[l]))
            gB.append(.allocate(capacity: strides[l + 1]))
        }
        let gOut = UnsafeMutablePointer<Float>.allocate(capacity: lastStride)
        var total = [Double](repeating: 0, count: model.layout.count)
        let deltaA = UnsafeMutablePointer<Float>.allocate(capacity: b * maxStride)
        let deltaB = UnsafeMutablePointer<Float>.allocate(capacity: b * maxStride)
        defer {
            for p in gW + gB { p.deallocate() }
            gOut.deallocate()
            deltaA.deallocate()
            deltaB.deallocate()
        }
        var start = 0
        while start < batch.count {
            let rows = min(b, batch.count - start)
            forwardBlock(batch, start: start, rows: rows, output: nil)
            for l in 0..<layers {
                gW[l].initialize(repeating: 0, count: widths[l + 1] * strides[l])
                gB[l].initialize(repeating: 0, count: strides[l + 1])
            }
            gOut.initialize(repeating: 0, count: lastStride)
            var gOutBias: Float = 0

            // Output layer: its weight gradient, and δ for the last hidden layer.
            let last = activations[layers - 1]
            var delta = deltaA
            var spare = deltaB
            let outputHasBias = model.offsets(layers).bias != nil
            for i in 0..<rows {
                let g = dOut[start + i]
                let ai = last + i * lastStride
                let di = delta + i * lastStride
                let gv = SIMD8<Float>(repeating: g)
                var aa = SIMD8<Float>()
                for c in 0..<(lastStride / 8) {
                    let a = Self.load(ai, c)
                    if accumulate { Self.store(Self.load(gOut, c) + gv * a, gOut, c) }
                    aa += a * a
                    // ReLU′: active units only (padding lanes have a = 0).
                    Self.store((gv * Self.load(outputWeights, c)).replacing(with: 0, where: a .<= 0), di, c)
                }
                gOutBias += g
                if let rowNormsSquared {
                    rowNormsSquared[start + i] = Double(g) * Double(g) * (Double(aa.sum()) + (outputHasBias ? 1 : 0))
                }
            }
            let (wo, bo) = model.offsets(layers)
            for j in 0..<widths[layers] { total[wo + j] += Double(gOut[j]) }
            if let bo { total[bo] += Double(gOutBias) }

            // Hidden layers, last to first.
            var l = layers - 1
            while l >= 0 {
                let source = l == 0 ? input : activations[l - 1]
                let inStride = strides[l]
                let deltaStride = strides[l + 1]
                let width = widths[l + 1]
                let chunks = inStride / 8
                let w = weights[l]
                let gw = gW[l]
                let gb = gB[l]
                for i in 0..<rows {
                    let xi = source + i * inStride
                    let di = delta + i * deltaStride
                    let ni = spare + i * inStride
                    if l > 0 { for c in 0..<chunks { Self.store(SIMD8<Float>(), ni, c) } }
                    if let rowNormsSquared {
                        var dd = SIMD8<Float>()
                        var xx = SIMD8<Float>()
                        for c in 0..<(deltaStride / 8) { dd += Self.load(di, c) * Self.load(di, c) }
                        for c in 0..<chunks { xx += Self.load(xi, c) * Self.load(xi, c) }
                        rowNormsSquared[start + i] += Double(dd.sum()) * (Double(xx.sum()) + 1)
                    }
                    // Bias gradient: the δ row, whole chunks (padding lanes are zero).
                    if accumulate { for c in 0..<(deltaStride / 8) { Self.store(Self.load(gb, c) + Self.load(di, c), gb, c) } }
                    // No skip for inactive units: a branch on δ = 0 mispredicts half the time.
                    for k in 0..<width {
                        let dk = di[k]
                        let dv = SIMD8<Float>(repeating: dk)
                        let gk = gw + k * inStride
                        let wk = w + k * inStride
                        if accumulate {
                            for c in 0..<chunks {
                                Self.store(Self.load(gk, c) + dv * Self.load(xi, c), gk, c)
                                if l > 0 { Self.store(Self.load(ni, c) + dv * Self.load(wk, c), ni, c) }
                            }
                        } else if l > 0 {
                            for c in 0..<chunks { Self.store(Self.load(ni, c) + dv * Self.load(wk, c), ni, c) }
                        }
                    }
                    if l > 0 {
                        // δ for the layer below, masked by its ReLU.
                        for c in 0..<chunks {
                            Self.store(Self.load(ni, c).replacing(with: 0, where: Self.load(xi, c) .<= 0), ni, c)
                        }
                    }
                }
                let fanIn = widths[l]
                let (wOff, bOff) = model.offsets(l)
                for k in 0..<width {
                    for j in 0..<fanIn { total[wOff + k * fanIn + j] += Double(gw[k * inStride + j]) }
                    total[bOff! + k] += Double(gb[k])
                }
                swap(&delta, &spare)
                l -= 1
            }
            start += rows
        }
        if accumulate { for i in 0..<total.count { gradient[i] = Float(total[i]) } }
    }
}

extension MLP: PerExampleClipping {
    /// The classifier's loss is a sum of per-row log-losses; DeepSurv's Cox loss is not (nil).
    /// Row i's gradient is Jᵢᵀ·rᵢ, linear in its output residual rᵢ = σ(oᵢ) − yᵢ, so clipping it
    /// scales rᵢ: one backward pass measures every row's norm (``PaddedPass/backward``'s
    /// `rowNormsSquared`), a second back-propagates the scaled residuals.
    public func clippedGradientSum(
        parameters: UnsafeBufferPointer<Float>, batch: Dataset, clip: Float, into sum: UnsafeMutableBufferPointer<Float>
    ) -> (loss: Double, clipped: Int)? {
        guard head == .logistic else { return nil }
        precondition(batch.task == task && batch.dimension == dimension, "batch does not fit the model")
        precondition(parameters.count == layout.count && sum.count == layout.count, "parameter count mismatch")
        precondition(clip > 0, "the clip norm must be > 0")
        let n = batch.count
        for i in 0..<sum.count { sum[i] = 0 }
        guard n > 0 else { return (0, 0) }
        let pass = PaddedPass(model: self, parameters: parameters.baseAddress!)
        var out = [Float](repeating: 0, count: n)
        var dOut = [Float](repeating: 0, count: n)
        var norms = [Double](repeating: 0, count: n)
        out.withUnsafeMutableBufferPointer { pass.forward(batch, into: $0.baseAddress!) }
        var loss = 0.0
        for i in 0..<n {
            let (l, r) = Kernels.logisticLoss(out[i], batch.labels[i])
            loss += Double(l)
            dOut[i] = r
        }
        dOut.withUnsafeBufferPointer { d in
            norms.withUnsafeMutableBufferPointer { pass.backward(batch, dOut: d.baseAddress!, into: sum.baseAddress!, rowNormsSquared: $0.baseAddress!, accumulate: false) }
        }
        var clipped = 0
        for i in 0..<n {
            let f = clipFactor(normSquared: norms[i], clip: clip)
            if f < 1 { clipped += 1 }
            dOut[i] *= f
        }
        dOut.withUnsafeBufferPointer { pass.backward(batch, dOut: $0.baseAddress!, into: sum.baseAddress!) }
        return (loss, clipped)
    }
}
