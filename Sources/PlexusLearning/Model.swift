public import PlexusCore

/// A model with a flat Float32 parameter vector.
///
/// Conventions every implementation MUST follow:
/// - `lossAndGradient` returns the *mean* data loss over the batch's rows (no L2, no proximal term —
///   ``Objective`` adds those) and OVERWRITES `gradient` (length ``layout``.count) with its gradient.
///   It MUST NOT keep state between calls; it is safe to call from several threads at once.
/// - Classification outputs are probabilities of class 1; survival outputs are log-risks η
///   (higher = earlier event), as in the Cox model h(t|x) = h₀(t)·exp(η(x)).
public protocol Model: Sendable {
    var task: Task { get }
    /// Number of input features.
    var dimension: Int { get }
    var layout: ParameterLayout { get }

    /// Initial parameters drawn from `generator` (zeros for the convex models).
    func initialParameters(using generator: inout Xoshiro256) -> [Float]

    /// Mean loss over `batch` at `parameters`; writes ∂loss/∂parameters into `gradient`.
    func lossAndGradient(
        parameters: UnsafeBufferPointer<Float>, batch: Dataset, gradient: UnsafeMutableBufferPointer<Float>
    ) -> Double

    /// One output per row of `batch` into `output`: probability (classification) or log-risk (survival).
    func predict(parameters: UnsafeBufferPointer<Float>, batch: Dataset, into output: UnsafeMutableBufferPointer<Float>)
}

extension Model {
    /// Array convenience for ``lossAndGradient(parameters:batch:gradient:)``; resizes `gradient` if needed.
    public func lossAndGradient(parameters: [Float], batch: Dataset, into gradient: inout [Float]) -> Double {
        precondition(parameters.count == layout.count, "expected \(layout.count) parameters, got \(parameters.count)")
        if gradient.count != layout.count { gradient = [Float](repeating: 0, count: layout.count) }
        return parameters.withUnsafeBufferPointer { p in
            gradient.withUnsafeMutableBufferPointer { g in lossAndGradient(parameters: p, batch: batch, gradient: g) }
        }
    }

    /// Mean data loss (the gradient is computed and discarded).
    public func loss(parameters: [Float], batch: Dataset) -> Double {
        var gradient = [Float](repeating: 0, count: layout.count)
        return lossAndGradient(parameters: parameters, batch: batch, into: &gradient)
    }

    /// One output per row: probability (classification) or log-risk (survival).
    public func predict(parameters: [Float], batch: Dataset) -> [Float] {
        precondition(parameters.count == layout.count, "expected \(layout.count) parameters, got \(parameters.count)")
        var out = [Float](repeating: 0, count: batch.count)
        parameters.withUnsafeBufferPointer { p in
            out.withUnsafeMutableBufferPointer { o in predict(parameters: p, batch: batch, into: o) }
        }
        return out
    }
}

/// The model a plan names, for data with `dimension` features.
public func makeModel(plan: Plan, dimension: Int) -> any Model {
    switch plan.model {
    case .logistic: LogisticRegression(dimension: dimension)
    case .cox: CoxRegression(dimension: dimension, ties: plan.ties)
    case .mlp: MLP(dimension: dimension, hidden: plan.hidden, head: .logistic)
    case .deepsurv: MLP(dimension: dimension, hidden: plan.hidden, head: .cox(plan.ties))
    }
}
