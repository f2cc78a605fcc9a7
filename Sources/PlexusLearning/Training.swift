#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
public import PlexusCore

/// The objective a trainer minimises: the model's mean data loss, plus λ/2·Σ w² over the penalised
/// tensors (``Plan/l2``), plus the FedProx term μ/2·‖w − w_ref‖² (``Plan/proximal``) when a
/// reference is given.
public struct Objective: Sendable {
    public let model: any Model
    /// λ ≥ 0, per sample (the data loss is a mean). scikit-learn's `C` corresponds to λ = 1/(C·n).
    public var l2: Double
    /// μ ≥ 0.
    public var proximal: Double
    private let mask: [Float]

    public init(model: any Model, l2: Double, proximal: Double = 0) {
        precondition(l2 >= 0 && proximal >= 0, "l2 and proximal must be ≥ 0")
        self.model = model
        self.l2 = l2
        self.proximal = proximal
        self.mask = model.layout.penaltyMask
    }

    /// Objective value at `parameters`; writes its gradient into `gradient`.
    /// - Parameter reference: w_ref for the proximal term; ignored when `proximal` is 0 or it is `nil`.
    public func valueAndGradient(
        parameters: UnsafeBufferPointer<Float>, batch: Dataset, reference: UnsafeBufferPointer<Float>?,
        gradient: UnsafeMutableBufferPointer<Float>
    ) -> Double {
        let loss = model.lossAndGradient(parameters: parameters, batch: batch, gradient: gradient)
        return addPenalties(parameters: parameters, reference: reference, gradient: gradient, to: loss)
    }

    /// Adds the gradients of the L2 and proximal terms to `gradient` and their values to `value`:
    /// the part of the objective that depends on no row (DP-SGD adds it after the noise).
    public func addPenalties(
        parameters: UnsafeBufferPointer<Float>, reference: UnsafeBufferPointer<Float>?, gradient: UnsafeMutableBufferPointer<Float>,
        to value: Double
    ) -> Double {
        var value = value
        if l2 > 0 {
            let lambda = Float(l2)
            var sum = 0.0
            for i in 0..<parameters.count where mask[i] != 0 {
                let w = parameters[i]
                sum += Double(w * w)
                gradient[i] += lambda * w
            }
            value += 0.5 * l2 * sum
        }
        if proximal > 0, let reference {
            precondition(reference.count == parameters.count, "the proximal reference has the wrong length")
            let mu = Float(proximal)
            var sum = 0.0
            for i in 0..<parameters.count {
                let diff = parameters[i] - reference[i]
                sum += Double(diff * diff)
                gradient[i] += mu * diff
            }
            value += 0.5 * proximal * sum
        }
        return value
    }

    /// Array convenience.
    public func valueAndGradient(parameters: [Float], batch: Dataset, reference: [Float]? = nil, into gradient: inout [Float]) -> Double {
        if gradient.count != parameters.count { gradient = [Float](repeating: 0, count: parameters.count) }
        return parameters.withUnsafeBufferPointer { p in
            gradient.withUnsafeMutableBufferPointer { g in
                if let reference {
                    reference.withUnsafeBufferPointer { valueAndGradient(parameters: p, batch: batch, reference: $0, gradient: g) }
                } else {
                    valueAndGradient(parameters: p, batch: batch, reference: nil, gradient: g)
                }
            }
        }
    }
}

/// An optimizer with its state (momentum buffer, Adam moments, step count).
///
/// - SGD: v ← m·v + g; w ← w − η·v (PyTorch's form; m = ``Plan/momentum``, 0 = plain SGD).
/// - Adam: β₁ = 0.9, β₂ = 0.999, ε = 1e-8, bias-corrected.
public struct OptimizerState: Sendable {
    public let kind: Plan.Optimizer
    public var learningRate: Double
    public var momentum: Double
    /// Steps taken so far.
    public private(set) var step: Int = 0
    private var first: [Float]
    private var second: [Float]

    public init(kind: Plan.Optimizer, parameterCount: Int, learningRate: Double, momentum: Double = 0) {
        precondition(learningRate > 0, "learning rate must be > 0")
        precondition(momentum >= 0 && momentum < 1, "momentum must be in [0, 1)")
        self.kind = kind
        self.learningRate = learningRate
        self.momentum = momentum
        self.first = [Float](repeating: 0, count: parameterCount)
        self.second = kind == .adam ? [Float](repeating: 0, count: parameterCount) : []
    }

    /// Forgets momentum and moments (e.g. after the consensus step replaced the parameters).
    public mutating func reset() {
        step = 0
        for i in first.indices { first[i] = 0 }
        for i in second.indices { second[i] = 0 }
    }

    /// One step: `parameters` ← update(`parameters`, `gradient`).
    public mutating func apply(gradient: UnsafeBufferPointer<Float>, to parameters: UnsafeMutableBufferPointer<Float>) {
        precondition(gradient.count == first.count && parameters.count == first.count, "optimizer state has the wrong size")
        step += 1
        let lr = Float(learningRate)
        switch kind {
        case .sgd:
            if momentum == 0 {
                for i in 0..<parameters.count { parameters[i] -= lr * gradient[i] }
            } else {
                let m = Float(momentum)
                for i in 0..<parameters.count {
                    first[i] = m * first[i] + gradient[i]
                    parameters[i] -= lr * first[i]
                }
            }
        case .adam:
            let b1: Float = 0.9
            let b2: Float = 0.999
            let c1 = 1 - Float(pow(0.9, Double(step)))
            let c2 = 1 - Float(pow(0.999, Double(step)))
            let stepSize = lr / c1
            let sqrtC2 = c2.squareRoot()
            for i in 0..<parameters.count {
                let g = gradient[i]
                first[i] = b1 * first[i] + (1 - b1) * g
                second[i] = b2 * second[i] + (1 - b2) * g * g
                parameters[i] -= stepSize * first[i] / (second[i].squareRoot() / sqrtC2 + 1e-8)
            }
        }
    }
}

/// Runs optimizer steps of a plan on local data: what a peer does between two consensus steps,
/// and what `plexus train` repeats for a whole run.
///
/// State that persists across calls: the optimizer state, the mini-batch order and its generator
/// (seeded from ``Plan/seed``), the gradient buffer and one reusable mini-batch buffer. Per step,
/// the models allocate only small scratch buffers per call (a few, independent of the row count
/// for logistic regression and the MLPs; O(n) risk-set arrays for the Cox loss) — never per row.
public struct LocalTrainer: Sendable {
    public let objective: Objective
    public var optimizer: OptimizerState
    /// `nil` = full batch.
    public let batchSize: Int?
    private var generator: Xoshiro256
    private var order: [Int] = []
    private var cursor = 0
    var batch: Dataset?
    var gradient: [Float]

    public var model: any Model { objective.model }

    /// - Parameter seed: overrides ``Plan/seed`` for the mini-batch order.
    public init(model: any Model, plan: Plan, seed: UInt64? = nil) {
        precondition(plan.batchSize.map { $0 > 0 } ?? true, "batch size must be ≥ 1")
        self.objective = Objective(model: model, l2: plan.l2, proximal: plan.proximal)
        self.optimizer = OptimizerState(
            kind: plan.optimizer, parameterCount: model.layout.count, learningRate: plan.learningRate, momentum: plan.momentum)
        self.batchSize = plan.batchSize
        self.generator = Xoshiro256(seed: seed ?? plan.seed, stream: "batches")
        self.gradient = [Float](repeating: 0, count: model.layout.count)
    }

    /// Runs `steps` optimizer steps on `data` from `parameters`, in place.
    ///
    /// - Parameters:
    ///   - reference: w_ref for the FedProx term (the consensus model), used when ``Plan/proximal`` > 0.
    /// - Returns: the mean objective over the steps (each measured before its update, on its batch).
    @discardableResult
    public mutating func train(parameters: inout [Float], on data: Dataset, steps: Int, reference: [Float]? = nil) -> Double {
        precondition(parameters.count == objective.model.layout.count, "parameter count does not match the model")
        precondition(data.task == objective.model.task && data.dimension == objective.model.dimension, "data does not fit the model")
        guard steps > 0, data.count > 0 else { return .nan }
        var total = 0.0
        for _ in 0..<steps {
            let value: Double
            if let size = batchSize, size < data.count {
                nextBatch(from: data, size: size)
                value = step(parameters: &parameters, batch: batch!, reference: reference)
            } else {
                value = step(parameters: &parameters, batch: data, reference: reference)
            }
            total += value
        }
        return total / Double(steps)
    }

    private mutating func step(parameters: inout [Float], batch: Dataset, reference: [Float]?) -> Double {
        // Move the buffers out of `self` for the duration (no copy, no allocation) so that the
        // optimizer can be mutated while they are borrowed.
        var gradient: [Float] = []
        swap(&gradient, &self.gradient)
        defer { swap(&gradient, &self.gradient) }
        let objective = self.objective
        let value = parameters.withUnsafeBufferPointer { p in
            gradient.withUnsafeMutableBufferPointer { g in
                if let reference {
                    reference.withUnsafeBufferPointer { objective.valueAndGradient(parameters: p, batch: batch, reference: $0, gradient: g) }
                } else {
                    objective.valueAndGradient(parameters: p, batch: batch, reference: nil, gradient: g)
                }
            }
        }
        gradient.withUnsafeBufferPointer { g in
            parameters.withUnsafeMutableBufferPointer { optimizer.apply(gradient: g, to: $0) }
        }
        return value
    }

    private mutating func nextBatch(from data: Dataset, size: Int) {
        if order.count != data.count {
            order = Array(0..<data.count)
            cursor = data.count
        }
        if cursor + size > data.count {
            generator.shuffle(&order)
            cursor = 0
        }
        if batch == nil || batch!.featureNames != data.featureNames { batch = data.emptyCopy(reservingCapacity: size) }
        batch!.gather(from: data, rows: order[cursor..<(cursor + size)])
        cursor += size
    }
}

/// Full-batch L-BFGS to convergence, for the convex models (logistic, Cox): the "centralized" and
/// "isolated" reference fits, which scikit-learn and lifelines also solve to convergence.
public enum Solver {
    public struct Result: Sendable {
        public var parameters: [Float]
        public var objective: Double
        /// ‖∇‖∞ at the returned parameters.
        public var gradientNorm: Double
        public var iterations: Int
        public var converged: Bool
    }

    /// Minimises `objective` over `data` from `initial`.
    /// - Parameters:
    ///   - gradientTolerance: stop when ‖∇‖∞ ≤ this. Default 1e-6.
    ///   - maxIterations: default 1000.
    public static func lbfgs(
        objective: Objective, data: Dataset, initial: [Float], gradientTolerance: Double = 1e-6,
        maxIterations: Int = 1000, memory: Int = 10
    ) -> Result {
        let n = initial.count
        var x = initial.map(Double.init)
        var xf = initial
        var gf = [Float](repeating: 0, count: n)
        func evaluate(_ point: [Double]) -> (Double, [Double]) {
            for i in 0..<n { xf[i] = Float(point[i]) }
            let value = objective.valueAndGradient(parameters: xf, batch: data, into: &gf)
            return (value, gf.map(Double.init))
        }
        var (f, g) = evaluate(x)
        var sHistory: [[Double]] = []
        var yHistory: [[Double]] = []
        var rhoHistory: [Double] = []
        var iterations = 0
        var converged = false
        func infNorm(_ v: [Double]) -> Double { v.reduce(0) { max($0, abs($1)) } }
        while iterations < maxIterations {
            if infNorm(g) <= gradientTolerance {
                converged = true
                break
            }
            iterations += 1
            // Two-loop recursion: direction = −H·g.
            var q = g
            var alphas = [Double](repeating: 0, count: sHistory.count)
            for k in stride(from: sHistory.count - 1, through: 0, by: -1) {
                let a = rhoHistory[k] * dot(sHistory[k], q)
                alphas[k] = a
                for i in 0..<n { q[i] -= a * yHistory[k][i] }
            }
            if let s = sHistory.last, let y = yHistory.last {
                let gamma = dot(s, y) / dot(y, y)
                for i in 0..<n { q[i] *= gamma }
            } else {
                let scale = 1 / max(infNorm(g), 1)
                for i in 0..<n { q[i] *= scale }
            }
            for k in 0..<sHistory.count {
                let b = rhoHistory[k] * dot(yHistory[k], q)
                for i in 0..<n { q[i] += sHistory[k][i] * (alphas[k] - b) }
            }
            var direction = q.map { -$0 }
            var slope = dot(direction, g)
            if slope >= 0 {  // not a descent direction: restart from steepest descent
                sHistory.removeAll()
                yHistory.removeAll()
                rhoHistory.removeAll()
                direction = g.map { -$0 / max(infNorm(g), 1) }
                slope = dot(direction, g)
            }
            // Backtracking line search (Armijo).
            var t = 1.0
            var accepted = false
            var newX = x
            var newF = f
            var newG = g
            for _ in 0..<50 {
                for i in 0..<n { newX[i] = x[i] + t * direction[i] }
                (newF, newG) = evaluate(newX)
                if newF.isFinite && newF <= f + 1e-4 * t * slope {
                    accepted = true
                    break
                }
                t *= 0.5
            }
            if !accepted { break }  // no decrease representable in Float32: as close as it gets
            var s = [Double](repeating: 0, count: n)
            var y = [Double](repeating: 0, count: n)
            for i in 0..<n {
                s[i] = newX[i] - x[i]
                y[i] = newG[i] - g[i]
            }
            let sy = dot(s, y)
            if sy > 1e-12 {
                sHistory.append(s)
                yHistory.append(y)
                rhoHistory.append(1 / sy)
                if sHistory.count > memory {
                    sHistory.removeFirst()
                    yHistory.removeFirst()
                    rhoHistory.removeFirst()
                }
            }
            let decrease = f - newF
            x = newX
            f = newF
            g = newG
            if decrease <= 1e-15 * max(abs(f), 1) && infNorm(g) <= 100 * gradientTolerance {
                converged = true
                break
            }
        }
        for i in 0..<n { xf[i] = Float(x[i]) }
        return Result(parameters: xf, objective: f, gradientNorm: infNorm(g), iterations: iterations, converged: converged)
    }

    private static func dot(_ a: [Double], _ b: [Double]) -> Double {
        var s = 0.0
        for i in 0..<a.count { s += a[i] * b[i] }
        return s
    }
}
