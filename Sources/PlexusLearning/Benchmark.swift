#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
public import PlexusCore

/// Measurements behind `plexus bench train`: training throughput beside the machine's memory
/// bandwidth, and the growth of the Cox gradient with n. Reported, never asserted.
public enum TrainBenchmark {
    public struct Measurement: Sendable, Hashable, Codable {
        public var name: String
        public var rows: Int
        /// Best of the repetitions, in seconds.
        public var seconds: Double
        public var rowsPerSecond: Double { Double(rows) / seconds }
    }

    /// Seconds for `body`, best of `repetitions` (after one warm-up run).
    public static func best(repetitions: Int, _ body: () -> Void) -> Double {
        body()
        let clock = ContinuousClock()
        var best = Double.infinity
        for _ in 0..<max(1, repetitions) {
            let start = clock.now
            body()
            let d = clock.now - start
            best = min(best, Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18)
        }
        return best
    }

    /// memcpy throughput in bytes per second, copying a buffer of `bytes` (default 256 MiB, far
    /// beyond the caches) — the bound on a pass that streams data from memory.
    public static func memcpyBandwidth(bytes: Int = 256 << 20, repetitions: Int = 5) -> Double {
        let source = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
        let destination = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
        defer {
            source.deallocate()
            destination.deallocate()
        }
        memset(source, 1, bytes)
        memset(destination, 0, bytes)
        let seconds = best(repetitions: repetitions) { memcpy(destination, source, bytes) }
        return Double(bytes) / seconds
    }

    /// A synthetic dataset with a logistic / proportional-hazards signal, Gaussian features.
    public static func syntheticDataset(task: Task, rows: Int, dimension: Int, seed: UInt64 = 1) -> Dataset {
        var g = Xoshiro256(seed: seed, stream: "synthetic")
        var x = [Float](repeating: 0, count: rows * dimension)
        var labels: [Float] = []
        var times: [Double] = []
        var events: [Float] = []
        if task == .classification { labels.reserveCapacity(rows) } else {
            times.reserveCapacity(rows)
            events.reserveCapacity(rows)
        }
        for i in 0..<rows {
            var eta = 0.0
            for j in 0..<dimension {
                let v = g.nextGaussian()
                x[i * dimension + j] = Float(v)
                if j < 5 { eta += v * 0.5 }
            }
            if task == .classification {
                labels.append(g.nextUnit() < 1 / (1 + exp(-eta)) ? 1 : 0)
            } else {
                times.append((-log(max(g.nextUnit(), 1e-300)) * exp(-eta) * 1000).rounded())
                events.append(g.nextUnit() < 0.7 ? 1 : 0)
            }
        }
        let names = (0..<dimension).map { "x\($0)" }
        return task == .classification
            ? Dataset(featureNames: names, features: x, labels: labels)
            : Dataset(featureNames: names, features: x, times: times, events: events)
    }

    /// Seconds for one epoch of `plan`'s model over `data`: full batch, or every mini-batch of
    /// ``Plan/batchSize`` once, each a gradient and an optimizer update.
    public static func epoch(plan: Plan, data: Dataset, repetitions: Int = 3) -> Double {
        let model = makeModel(plan: plan, dimension: data.dimension)
        var generator = Xoshiro256(seed: plan.seed, stream: "init")
        var parameters = model.initialParameters(using: &generator)
        var trainer = LocalTrainer(model: model, plan: plan)
        let steps = plan.batchSize.map { max(1, data.count / $0) } ?? 1
        return best(repetitions: repetitions) { trainer.train(parameters: &parameters, on: data, steps: steps) }
    }

    /// Seconds for one epoch of DP-SGD (``LocalTrainer/trainPrivately(parameters:on:steps:reference:privacy:generator:)``)
    /// at sampling rate q = batch ÷ n (1 ÷ q steps of Poisson batches, per-row clipping, Gaussian
    /// noise from a seeded generator), beside which `epoch` measures the same plan without privacy.
    public static func privateEpoch(plan: Plan, data: Dataset, batch: Int?, repetitions: Int = 3) -> Double {
        let model = makeModel(plan: plan, dimension: data.dimension)
        var generator = Xoshiro256(seed: plan.seed, stream: "init")
        var parameters = model.initialParameters(using: &generator)
        var trainer = LocalTrainer(model: model, plan: plan)
        let q = batch.map { min(1, Double($0) / Double(data.count)) } ?? 1
        let steps = batch.map { max(1, data.count / $0) } ?? 1
        let privacy = PrivateSGD(samplingRate: q, clip: 1, noiseMultiplier: 1)
        var noise = Xoshiro256(seed: plan.seed, stream: "bench-noise")
        return best(repetitions: repetitions) {
            _ = trainer.trainPrivately(parameters: &parameters, on: data, steps: steps, privacy: privacy, generator: &noise)
        }
    }

    /// Seconds for one Cox loss-and-gradient at n rows (rows already sorted by time, the O(n)
    /// passes plus the O(n·d) products), and for sorting the rows by time (O(n log n), once per dataset).
    public static func coxGradient(rows: Int, dimension: Int, repetitions: Int = 3) -> (gradient: Double, sort: Double) {
        let data = syntheticDataset(task: .survival, rows: rows, dimension: dimension)
        let model = CoxRegression(dimension: dimension)
        let parameters = [Float](repeating: 0.05, count: dimension)
        var gradient = [Float](repeating: 0, count: dimension)
        let g = best(repetitions: repetitions) {
            _ = model.lossAndGradient(parameters: parameters, batch: data, into: &gradient)
        }
        let s = best(repetitions: repetitions) {
            _ = data.subset(0..<rows)  // rebuilds the time order
        }
        return (g, s)
    }
}
