#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// DP-SGD's settings for one site's local training (Abadi et al. 2016): each step takes a
/// Poisson-subsampled batch (every row independently with probability q), clips each row's
/// gradient to L2 norm C, sums them, adds Gaussian noise of standard deviation σC to every
/// coordinate of the sum, and divides by the expected batch size q·n — a constant, so the step
/// is the sampled Gaussian mechanism of sensitivity C that ``RDPCurve`` (PlexusPrivacy) accounts
/// for, with noise multiplier σ. The penalties (L2, proximal) depend on no row and are added
/// after the noise.
public struct PrivateSGD: Sendable, Hashable {
    /// q, in (0, 1].
    public var samplingRate: Double
    /// C > 0.
    public var clip: Float
    /// σ ≥ 0 (0: clipping without noise — not private, for measuring what clipping costs).
    public var noiseMultiplier: Double

    /// s, the mean number of rows per random stratum for the models whose loss couples rows (Cox,
    /// DeepSurv): a step's batch is cut into G = max(1, round(q·n ÷ s)) strata by a fresh, secret,
    /// uniform label per row.
    public var stratumSize: Int

    public init(samplingRate: Double, clip: Float, noiseMultiplier: Double, stratumSize: Int = 8) {
        precondition(samplingRate > 0 && samplingRate <= 1, "the sampling rate is in (0, 1]")
        precondition(clip > 0 && clip.isFinite && noiseMultiplier >= 0 && noiseMultiplier.isFinite, "C > 0, σ ≥ 0")
        precondition(stratumSize >= 1, "a stratum holds at least one row on average")
        self.samplingRate = samplingRate
        self.clip = clip
        self.noiseMultiplier = noiseMultiplier
        self.stratumSize = stratumSize
    }

    /// The number of random strata for a site of `rows` rows: G = max(1, round(q·n ÷ s)), a public
    /// function of public numbers.
    public func strata(rows: Int) -> Int {
        let g = (samplingRate * Double(rows) / Double(stratumSize)).rounded()
        return g >= 1 && g < 1e9 ? Int(g) : (g >= 1e9 ? 1_000_000_000 : 1)
    }
}

/// DP-SGD for a loss that couples rows through risk sets (Cox, DeepSurv): **random strata**.
/// Each row of the Poisson batch gets an independent, secret, uniform label in 0..<G; each
/// stratum's loss uses only its own rows' risk sets; its summed parameter gradient is clipped to
/// C; the strata are summed. Adding or removing one patient changes only its own stratum, whose
/// clipped gradient moves from one vector of norm ≤ C to another, so the sum moves by at most 2C
/// — whatever the features, the parameters, the model or the tie rule — and the noise is
/// N(0, (2σC)²) per coordinate: each step is then the sampled Gaussian mechanism with
/// multiplier σ, which the Rényi accountant charges unchanged (the argument, with the
/// reduction to the one-dimensional pair, is in README "Differential privacy"). A stratum
/// assignment independent of the data makes the fit a Cox model stratified by a random label:
/// its estimating equation is still unbiased for β (the stratified-Cox argument).
public enum RandomStrata {
    /// Σ_g clip_C(∇L_g) over the strata of `batch` given each row's `labels` (in 0..<`strata`),
    /// into `sum` (overwritten); L_g is the stratum's summed (not averaged) negative partial
    /// log-likelihood. Each stratum is scaled to norm at most C·(1 − 10⁻⁶), so rounding cannot
    /// push it past C. Returns the summed loss and how many strata were scaled down.
    public static func clippedSum(
        model: any Model, parameters: [Float], batch: Dataset, labels: [Int], strata: Int, clip: Float, into sum: inout [Float]
    ) -> (loss: Double, clipped: Int) {
        precondition(labels.count == batch.count && strata >= 1)
        var members = [[Int]](repeating: [], count: strata)
        for (row, label) in labels.enumerated() {
            precondition((0..<strata).contains(label), "a stratum label out of range")
            members[label].append(row)
        }
        var total = [Double](repeating: 0, count: model.layout.count)
        var gradient = [Float](repeating: 0, count: model.layout.count)
        var stratum = batch.emptyCopy(reservingCapacity: 16)
        var loss = 0.0
        var clipped = 0
        let limit = Double(clip) * (1 - 1e-6)
        for rows in members where rows.count >= 2 {
            stratum.gather(from: batch, rows: rows)
            let n = Double(rows.count)
            loss += model.lossAndGradient(parameters: parameters, batch: stratum, into: &gradient) * n
            var squares = 0.0
            for g in gradient { squares += Double(g) * Double(g) }
            let norm = squares.squareRoot() * n
            let factor = norm > limit ? limit / norm : 1
            if factor < 1 { clipped += 1 }
            for i in total.indices { total[i] += Double(gradient[i]) * n * factor }
        }
        if sum.count != total.count { sum = [Float](repeating: 0, count: total.count) }
        for i in total.indices { sum[i] = Float(total[i]) }
        return (loss, clipped)
    }
}

/// What the private steps of one call did.
public struct PrivateStepsReport: Sendable, Hashable {
    public var steps = 0
    /// Rows drawn over the steps (their mean is q·n).
    public var rows = 0
    /// Rows (or, for Cox and DeepSurv, random strata) whose gradient was scaled down to C.
    public var clippedRows = 0
    /// The mean per-row data loss over the drawn rows (NaN when none were drawn). It is computed
    /// from the rows, so it is not private: it stays in the site's own log and never leaves it.
    public var meanLoss = Double.nan
}

extension LocalTrainer {
    /// Runs `steps` DP-SGD steps on `data` from `parameters`, in place, drawing the batches and the
    /// noise from `generator` (on a real node, the system CSPRNG: the plan's seed is public).
    /// Models whose loss is a sum over rows clip per row (sensitivity C); Cox and DeepSurv, whose
    /// partial likelihood couples rows, clip per random stratum (``RandomStrata``, sensitivity 2C).
    /// Returns nil, and changes nothing, for a classifier whose loss does not decompose by rows.
    public mutating func trainPrivately(
        parameters: inout [Float], on data: Dataset, steps: Int, reference: [Float]? = nil, privacy: PrivateSGD,
        generator: inout some RandomNumberGenerator
    ) -> PrivateStepsReport? {
        precondition(parameters.count == objective.model.layout.count, "parameter count does not match the model")
        precondition(data.task == objective.model.task && data.dimension == objective.model.dimension, "data does not fit the model")
        let perRow = (objective.model as? any PerExampleClipping).flatMap { $0.supportsPerExampleClipping ? $0 : nil }
        guard perRow != nil || objective.model.task == .survival else { return nil }
        var report = PrivateStepsReport()
        guard steps > 0, data.count > 0 else { return report }
        var rows: [Int] = []
        var lossSum = 0.0
        let denominator = Float(privacy.samplingRate * Double(data.count))
        // Sensitivity C per row; 2C per random stratum (a row moves its stratum from one clipped
        // vector to another).
        let noiseScale = privacy.noiseMultiplier * Double(privacy.clip) * (perRow == nil ? 2 : 1)
        let strata = privacy.strata(rows: data.count)
        var labels: [Int] = []
        if batch == nil || batch!.featureNames != data.featureNames {
            batch = data.emptyCopy(reservingCapacity: Int(min(Double(data.count), privacy.samplingRate * Double(data.count) * 2 + 16)))
        }
        for _ in 0..<steps {
            // q = 1 takes every row: no sampling, and no copy of the rows.
            let everyRow = privacy.samplingRate >= 1
            if everyRow {
                rows.removeAll(keepingCapacity: true)
                rows.append(contentsOf: 0..<data.count)
            } else {
                PoissonSampler.sample(count: data.count, rate: privacy.samplingRate, into: &rows, using: &generator)
                batch!.gather(from: data, rows: rows)
            }
            var gradient: [Float] = []
            swap(&gradient, &self.gradient)
            let step: (loss: Double, clipped: Int)
            if let model = perRow {
                step = model.clippedGradientSum(parameters: parameters, batch: everyRow ? data : batch!, clip: privacy.clip, into: &gradient)!
            } else {
                let source = everyRow ? data : batch!
                labels.removeAll(keepingCapacity: true)
                for _ in 0..<source.count { labels.append(Int.random(in: 0..<strata, using: &generator)) }
                step = RandomStrata.clippedSum(
                    model: objective.model, parameters: parameters, batch: source, labels: labels, strata: strata, clip: privacy.clip, into: &gradient)
            }
            if noiseScale > 0 {
                var gaussian = GaussianSampler()
                for i in gradient.indices { gradient[i] += Float(noiseScale * gaussian.next(using: &generator)) }
            }
            for i in gradient.indices { gradient[i] /= denominator }
            parameters.withUnsafeBufferPointer { p in
                gradient.withUnsafeMutableBufferPointer { g in
                    if let reference {
                        reference.withUnsafeBufferPointer { _ = objective.addPenalties(parameters: p, reference: $0, gradient: g, to: 0) }
                    } else {
                        _ = objective.addPenalties(parameters: p, reference: nil, gradient: g, to: 0)
                    }
                }
            }
            gradient.withUnsafeBufferPointer { g in
                parameters.withUnsafeMutableBufferPointer { optimizer.apply(gradient: g, to: $0) }
            }
            swap(&gradient, &self.gradient)
            report.steps += 1
            report.rows += rows.count
            report.clippedRows += step.clipped
            lossSum += step.loss
        }
        report.meanLoss = report.rows > 0 ? lossSum / Double(report.rows) : .nan
        return report
    }
}

extension PerExampleClipping {
    /// Whether ``clippedGradientSum(parameters:batch:clip:into:)`` answers for this model.
    var supportsPerExampleClipping: Bool {
        if let mlp = self as? MLP { return mlp.head == .logistic }
        return true
    }
}

/// Poisson sampling: each of `count` rows independently with probability `rate`, drawn by
/// geometric skips (O(rate·count) draws, not O(count)).
public enum PoissonSampler {
    public static func sample(count: Int, rate: Double, into rows: inout [Int], using generator: inout some RandomNumberGenerator) {
        rows.removeAll(keepingCapacity: true)
        guard count > 0, rate > 0 else { return }
        if rate >= 1 {
            rows.append(contentsOf: 0..<count)
            return
        }
        let logMiss = log1p(-rate)
        var index = -1
        while true {
            // The gap to the next drawn row is geometric: ⌊log U ÷ log(1 − q)⌋ for U in (0, 1].
            let u = Double((generator.next() >> 11) + 1) * 0x1p-53
            let gap = (log(u) / logMiss).rounded(.down)
            guard gap < Double(count - index - 1) else { return }
            index += Int(gap) + 1
            rows.append(index)
        }
    }
}

/// Standard normal variates by the Box–Muller transform from 53-bit uniforms, two per pair of
/// draws.
public struct GaussianSampler {
    private var spare: Double?

    public init() {}

    public mutating func next(using generator: inout some RandomNumberGenerator) -> Double {
        if let spare {
            self.spare = nil
            return spare
        }
        let u1 = Double((generator.next() >> 11) + 1) * 0x1p-53  // (0, 1]
        let u2 = Double(generator.next() >> 11) * 0x1p-53  // [0, 1)
        let radius = (-2 * log(u1)).squareRoot()
        spare = radius * sin(2 * Double.pi * u2)
        return radius * cos(2 * Double.pi * u2)
    }
}
