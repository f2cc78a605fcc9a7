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
    private func offsets(_ l: Int) -> (weight: Int, bias: Int?) {
        let base = l < hidden.count ? "hidden\(l + 1)" : "output"
        return (layout["\(base).weight"]!.offset, layout["\(base).bias"]?.offset)
    }

    private func forward(
        parameters: UnsafePointer<Float>, batch: Dataset, activations: inout [[Float]], output: UnsafeMutablePointer<Float>
    ) {
        let n = batch.count
        let widths = [dimension] + hidden
        batch.features.withUnsafeBufferPointer { xs in
            for l in 0..<hidden.count {
                let fanIn = widths[l]
                let width = widths[l + 1]
                let (wo, bo) = offsets(l)
                let w = parameters + wo
                let b = parameters + bo!
                let input: [Float]? = l == 0 ? nil : activations[l - 1]
                activations[l].withUnsafeMutableBufferPointer { act in
                    func run(_ inp: UnsafePointer<Float>) {
                        for i in 0..<n {
                            let xi = inp + i * fanIn
                            for k in 0..<width {
                                let z = Kernels.dot(w + k * fanIn, xi, fanIn) + b[k]
                                act[i * width + k] = max(z, 0)
                            }
                        }
                    }
                    if let input { input.withUnsafeBufferPointer { run($0.baseAddress!) } } else { run(xs.baseAddress!) }
                }
            }
        }
        let h = hidden.last!
        let (wo, bo) = offsets(hidden.count)
        let bias = bo.map { parameters[$0] } ?? 0
        activations[hidden.count - 1].withUnsafeBufferPointer { act in
            for i in 0..<n { output[i] = Kernels.dot(parameters + wo, act.baseAddress! + i * h, h) + bias }
        }
    }

    public func lossAndGradient(
        parameters: UnsafeBufferPointer<Float>, batch: Dataset, gradient: UnsafeMutableBufferPointer<Float>
    ) -> Double {
        precondition(batch.task == task && batch.dimension == dimension, "batch does not fit the model")
        precondition(parameters.count == layout.count && gradient.count == layout.count, "parameter count mismatch")
        let n = batch.count
        for i in 0..<gradient.count { gradient[i] = 0 }
        guard n > 0 else { return 0 }
        let p = parameters.baseAddress!
        let g = gradient.baseAddress!
        var activations = hidden.map { [Float](repeating: 0, count: n * $0) }
        var out = [Float](repeating: 0, count: n)
        out.withUnsafeMutableBufferPointer { forward(parameters: p, batch: batch, activations: &activations, output: $0.baseAddress!) }

        // Loss and ∂loss/∂output.
        var dOut = [Float](repeating: 0, count: n)
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

        // Output layer.
        let widths = [dimension] + hidden
        let h = hidden.last!
        let (wo, bo) = offsets(hidden.count)
        var delta = [Float](repeating: 0, count: n * h)
        activations[hidden.count - 1].withUnsafeBufferPointer { act in
            for i in 0..<n {
                Kernels.axpy(dOut[i], act.baseAddress! + i * h, g + wo, h)
                if let bo { g[bo] += dOut[i] }
                for k in 0..<h where act[i * h + k] > 0 { delta[i * h + k] = dOut[i] * p[wo + k] }
            }
        }
        // Hidden layers, last to first.
        batch.features.withUnsafeBufferPointer { xs in
            var l = hidden.count - 1
            while l >= 0 {
                let fanIn = widths[l]
                let width = widths[l + 1]
                let (wOff, bOff) = offsets(l)
                let inputArray: [Float]? = l == 0 ? nil : activations[l - 1]
                var nextDelta = [Float](repeating: 0, count: l == 0 ? 0 : n * fanIn)
                nextDelta.withUnsafeMutableBufferPointer { nd in
                    func run(_ inp: UnsafePointer<Float>) {
                        for i in 0..<n {
                            for k in 0..<width {
                                let dk = delta[i * width + k]
                                if dk == 0 { continue }
                                Kernels.axpy(dk, inp + i * fanIn, g + wOff + k * fanIn, fanIn)
                                g[bOff! + k] += dk
                                if l > 0 { Kernels.axpy(dk, p + wOff + k * fanIn, nd.baseAddress! + i * fanIn, fanIn) }
                            }
                            if l > 0 {
                                for j in 0..<fanIn where inp[i * fanIn + j] <= 0 { nd[i * fanIn + j] = 0 }
                            }
                        }
                    }
                    if let inputArray { inputArray.withUnsafeBufferPointer { run($0.baseAddress!) } } else { run(xs.baseAddress!) }
                }
                delta = nextDelta
                l -= 1
            }
        }
        return loss
    }

    public func predict(parameters: UnsafeBufferPointer<Float>, batch: Dataset, into output: UnsafeMutableBufferPointer<Float>) {
        precondition(batch.dimension == dimension && output.count >= batch.count, "batch does not fit the model")
        var activations = hidden.map { [Float](repeating: 0, count: batch.count * $0) }
        forward(parameters: parameters.baseAddress!, batch: batch, activations: &activations, output: output.baseAddress!)
        if head == .logistic {
            for i in 0..<batch.count { output[i] = Float(Kernels.sigmoid(Double(output[i]))) }
        }
    }
}
