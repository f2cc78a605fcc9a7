#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
public import PlexusCore

/// One covariate's row of the table a paper prints, on the original (unstandardized) scale.
public struct CoefficientInference: Sendable, Hashable, Codable {
    public var name: String
    /// β per unit of the covariate (log hazard ratio, log odds ratio).
    public var coefficient: Double
    public var standardError: Double
    /// exp(β): the hazard ratio (Cox) or odds ratio (logistic) per unit.
    public var ratio: Double
    /// The 95% Wald interval of the ratio: exp(β ± 1.959964·SE).
    public var lower: Double
    public var upper: Double
    /// β / SE.
    public var z: Double
    /// Two-sided Wald p-value.
    public var p: Double
}

/// The likelihood-ratio test of the fitted model against the model without covariates.
public struct LikelihoodRatioTest: Sendable, Hashable, Codable {
    /// 2·(ℓ_penalised(θ̂) − ℓ_null), ℓ_null the log-likelihood at β = 0 (Cox; lifelines' definition)
    /// or of the intercept-only model (logistic).
    public var statistic: Double
    public var degreesOfFreedom: Int
    public var p: Double
}

/// Wald inference for a fitted Cox or logistic model: coefficients on the original scale,
/// standard errors from the observed information (penalised as the fit was), intervals and
/// p-values, and the likelihood-ratio test.
public struct InferenceReport: Sendable, Hashable, Codable {
    /// `cox` or `logistic`.
    public var model: String
    /// `HR` or `OR`.
    public var ratioName: String
    /// Cox ties (`breslow`, `efron`); `nil` for logistic.
    public var ties: String?
    public var l2: Double
    public var rows: Int
    /// Events (Cox) or positive labels (logistic).
    public var events: Int
    /// One per feature (logistic: then `(intercept)`, whose ratio is the odds at x = 0).
    public var coefficients: [CoefficientInference]
    /// The unpenalised log-likelihood at θ̂ (Cox: the partial log-likelihood).
    public var logLikelihood: Double
    /// ℓ − n·λ/2·‖w‖², the quantity the fit maximises.
    public var penalizedLogLikelihood: Double
    public var nullLogLikelihood: Double
    public var likelihoodRatio: LikelihoodRatioTest
    /// Float64 Newton steps taken after the fit (0 when it was not refined).
    public var newtonSteps: Int
    /// ‖∂ℓ_penalised/∂θ‖∞ / n at θ̂ on the standardized scale: the mean-objective gradient.
    public var gradientNorm: Double
    /// Whether θ̂ is a maximum to the tolerance (gradient norm ≤ 1e-9); the standard errors of a
    /// model that is not at its optimum describe the curvature there, not a sampling distribution.
    public var converged: Bool
}

/// Builds ``InferenceReport``s from ``InformationSummary``s.
public enum Inference {
    /// The 0.975 quantile of the standard normal.
    public static let z975 = 1.959963984540054

    /// The gradient norm (per row) below which a refined fit counts as converged.
    public static let tolerance = 1e-9

    /// Inference for `trained` on its standardized training rows: for a convex model, optionally
    /// first refines the parameters by Float64 Newton steps on the penalised objective.
    /// Returns `nil` for the MLPs, or when the information is not positive definite.
    public static func report(
        for trained: TrainedModel, standardizedData data: Dataset, plan: Plan, refine: Bool
    ) -> (report: InferenceReport, parameters: [Float])? {
        stratified(for: trained, standardizedSites: [data], plan: plan, refine: refine)
    }

    /// Inference for `trained` with the likelihood stratified by site: every field of the
    /// information is the sum of each site's ``InformationSummary`` (for Cox, each site's own risk
    /// sets) — what a decentralized network optimises, and what its sites can add up without
    /// pooling rows. With `refine`, Newton steps on that sum first (the stratified pooled fit);
    /// without, the table describes `trained` as it is, and ``InferenceReport/gradientNorm`` says
    /// how far it is from the optimum.
    public static func stratified(
        for trained: TrainedModel, standardizedSites sites: [Dataset], plan: Plan, refine: Bool
    ) -> (report: InferenceReport, parameters: [Float])? {
        guard let first = sites.first else { return nil }
        let mask = trained.model.layout.penaltyMask.map { $0 != 0 }
        let site: (Dataset, [Double]) -> InformationSummary
        switch plan.model {
        case .cox: site = { CoxInformation.site($0, beta: $1, ties: plan.ties) }
        case .logistic: site = { LogisticInformation.site($0, theta: $1) }
        case .mlp, .deepsurv: return nil
        }
        let evaluate: ([Double]) -> InformationSummary = { theta in InformationSummary.sum(sites.map { site($0, theta) })! }
        var theta = trained.parameters.map(Double.init)
        var steps = 0
        var summary = evaluate(theta)
        if refine {
            (theta, summary, steps) = newton(from: theta, summary: summary, l2: plan.l2, mask: mask, evaluate: evaluate)
        }
        let null: Double
        switch plan.model {
        case .cox:
            null = evaluate([Double](repeating: 0, count: theta.count)).logLikelihood
        default:
            // The intercept-only model: the same for every stratification.
            let n = Double(summary.rows)
            let k = Double(summary.events)
            null = (k > 0 ? k * log(k / n) : 0) + (n - k > 0 ? (n - k) * log((n - k) / n) : 0)
        }
        guard
            let report = table(
                summary: summary, theta: theta, null: null, plan: plan, mask: mask, featureNames: first.featureNames,
                standardization: trained.standardization, newtonSteps: steps)
        else { return nil }
        return (report, theta.map { Float($0) })
    }

    /// Newton's method on ℓ − n·λ/2·‖w‖² from `theta`, halving a step that lowers the objective,
    /// until the per-row gradient norm is ≤ ``tolerance`` or 50 steps.
    static func newton(
        from start: [Double], summary first: InformationSummary, l2: Double, mask: [Bool],
        evaluate: ([Double]) -> InformationSummary
    ) -> ([Double], InformationSummary, Int) {
        var theta = start
        var summary = first
        var penalized = summary.penalized(at: theta, l2: l2, mask: mask)
        let rows = Double(max(summary.rows, 1))
        var steps = 0
        while steps < 50 {
            let norm = penalized.score.reduce(0) { max($0, abs($1)) } / rows
            if norm <= tolerance { break }
            guard let factor = SymmetricSolve.cholesky(penalized.information, dimension: summary.dimension) else { break }
            let direction = SymmetricSolve.solve(factor: factor, dimension: summary.dimension, penalized.score)
            var t = 1.0
            var accepted = false
            for _ in 0..<30 {
                let candidate = zip(theta, direction).map { $0 + t * $1 }
                let s = evaluate(candidate)
                let p = s.penalized(at: candidate, l2: l2, mask: mask)
                if p.logLikelihood.isFinite && p.logLikelihood >= penalized.logLikelihood - 1e-12 * abs(penalized.logLikelihood) {
                    theta = candidate
                    summary = s
                    penalized = p
                    accepted = true
                    break
                }
                t *= 0.5
            }
            steps += 1
            if !accepted { break }
        }
        return (theta, summary, steps)
    }

    /// The table at `theta` from the (unpenalised) summary of the rows.
    public static func table(
        summary: InformationSummary, theta: [Double], null: Double, plan: Plan, mask: [Bool], featureNames: [String],
        standardization: Standardization, newtonSteps: Int
    ) -> InferenceReport? {
        let q = summary.dimension
        let d = featureNames.count
        let penalized = summary.penalized(at: theta, l2: plan.l2, mask: mask)
        guard let factor = SymmetricSolve.cholesky(penalized.information, dimension: q) else { return nil }
        let covariance = SymmetricSolve.inverse(factor: factor, dimension: q)
        // The original scale: w_j = β_j / s_j; the logistic intercept b − Σ β_j·m_j/s_j. θ_orig = A·θ.
        var a = [Double](repeating: 0, count: q * q)
        for j in 0..<d { a[j * q + j] = 1 / standardization.scale[j] }
        if q == d + 1 {
            a[d * q + d] = 1
            for j in 0..<d { a[d * q + j] = -standardization.mean[j] / standardization.scale[j] }
        }
        var original = [Double](repeating: 0, count: q)
        for i in 0..<q { for j in 0..<q { original[i] += a[i * q + j] * theta[j] } }
        // Var(θ_orig) = A·Σ·Aᵀ; only the diagonal is needed.
        var names = featureNames
        if q == d + 1 { names.append("(intercept)") }
        var rows: [CoefficientInference] = []
        for i in 0..<q {
            var variance = 0.0
            for j in 0..<q where a[i * q + j] != 0 {
                for k in 0..<q where a[i * q + k] != 0 { variance += a[i * q + j] * covariance[j * q + k] * a[i * q + k] }
            }
            let se = max(variance, 0).squareRoot()
            let beta = original[i]
            let z = se > 0 ? beta / se : .nan
            rows.append(
                CoefficientInference(
                    name: names[i], coefficient: beta, standardError: se, ratio: exp(beta), lower: exp(beta - z975 * se),
                    upper: exp(beta + z975 * se), z: z, p: erfc(abs(z) / 2.0.squareRoot())))
        }
        let statistic = 2 * (penalized.logLikelihood - null)
        let df = d
        let norm = penalized.score.reduce(0) { max($0, abs($1)) } / Double(max(summary.rows, 1))
        return InferenceReport(
            model: plan.model.rawValue, ratioName: plan.model == .cox ? "HR" : "OR", ties: plan.model == .cox ? plan.ties.rawValue : nil,
            l2: plan.l2, rows: summary.rows, events: summary.events, coefficients: rows, logLikelihood: summary.logLikelihood,
            penalizedLogLikelihood: penalized.logLikelihood, nullLogLikelihood: null,
            likelihoodRatio: LikelihoodRatioTest(
                statistic: statistic, degreesOfFreedom: df, p: chiSquareSurvival(max(statistic, 0), degreesOfFreedom: df)),
            newtonSteps: newtonSteps, gradientNorm: norm, converged: norm <= tolerance)
    }

    /// P(χ²_k ≥ x): the regularized upper incomplete gamma Q(k/2, x/2) — a series for P when
    /// x/2 < k/2 + 1, a continued fraction (modified Lentz) for Q otherwise.
    public static func chiSquareSurvival(_ x: Double, degreesOfFreedom k: Int) -> Double {
        guard k > 0, x.isFinite else { return x.isFinite ? .nan : 0 }
        guard x > 0 else { return 1 }
        let a = Double(k) / 2
        let y = x / 2
        let logPrefactor = -y + a * log(y) - lgamma(a)
        if y < a + 1 {
            var term = 1 / a
            var sum = term
            var n = 1.0
            while n < 10_000 {
                term *= y / (a + n)
                sum += term
                if abs(term) < abs(sum) * 1e-16 { break }
                n += 1
            }
            return max(0, 1 - exp(logPrefactor) * sum)
        }
        let tiny = 1e-300
        var b = y + 1 - a
        var c = 1 / tiny
        var d = 1 / b
        var h = d
        var i = 1.0
        while i < 10_000 {
            let an = -i * (i - a)
            b += 2
            d = an * d + b
            if abs(d) < tiny { d = tiny }
            c = b + an / c
            if abs(c) < tiny { c = tiny }
            d = 1 / d
            let delta = d * c
            h *= delta
            if abs(delta - 1) < 1e-16 { break }
            i += 1
        }
        return exp(logPrefactor) * h
    }
}
