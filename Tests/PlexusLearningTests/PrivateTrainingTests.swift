import Foundation
import PlexusCore
import PlexusLearning
import Testing

/// DP-SGD's parts on real wdbc rows: the clipped per-row gradient sum, its sensitivity, Poisson
/// sampling, the noise, and the step's wiring.
@Suite struct PrivateTrainingTests {
    /// wdbc's seed-0 training and test rows, standardized on the training rows.
    static let wdbc: (train: Dataset, test: Dataset) = {
        let table = try! TestData.table("wdbc.csv")
        let split = try! TestData.split("wdbc", seed: 0)
        var train = try! DatasetLoader.load(table, plan: .logistic(), rows: split.train).dataset
        var test = try! DatasetLoader.load(table, plan: .logistic(), rows: split.test).dataset
        let standardization = Standardization(fitting: train)
        standardization.apply(to: &train)
        standardization.apply(to: &test)
        return (train, test)
    }()

    static func models(dimension d: Int) -> [any PerExampleClipping] {
        [LogisticRegression(dimension: d), MLP(dimension: d, hidden: [16], head: .logistic), MLP(dimension: d, hidden: [12, 8], head: .logistic)]
    }

    static func parameters(for model: any Model, seed: UInt64) -> [Float] {
        var generator = Xoshiro256(seed: seed)
        var p = model.initialParameters(using: &generator)
        // The convex model starts at zero; move it so that residuals differ between rows.
        for i in p.indices { p[i] += Float(generator.nextUnit() - 0.5) * 0.4 }
        return p
    }

    func rows(_ data: Dataset, _ indices: [Int]) -> Dataset {
        var batch = data.emptyCopy(reservingCapacity: indices.count)
        batch.gather(from: data, rows: indices)
        return batch
    }

    func norm(_ v: [Float]) -> Double { v.reduce(0) { $0 + Double($1) * Double($1) }.squareRoot() }

    /// The clipped sum equals the sum of every row's own gradient (a batch of one), each clipped
    /// by hand; with a clip no row reaches, it is n times the mean gradient.
    @Test func clippedSumIsTheSumOfClippedRowGradients() throws {
        let data = rows(Self.wdbc.train, Array(0..<40))
        for model in Self.models(dimension: data.dimension) {
            let p = Self.parameters(for: model, seed: 7)
            let norms = (0..<data.count).map { i -> Double in
                var g: [Float] = []
                _ = model.lossAndGradient(parameters: p, batch: rows(data, [i]), into: &g)
                return norm(g)
            }
            // Half the rows are clipped; C is midway between two rows' norms, far from either.
            let sorted = norms.sorted()
            let clip = Float((sorted[norms.count / 2] + sorted[norms.count / 2 - 1]) / 2)
            var expected = [Double](repeating: 0, count: model.layout.count)
            for i in 0..<data.count {
                var g: [Float] = []
                _ = model.lossAndGradient(parameters: p, batch: rows(data, [i]), into: &g)
                let f = min(1, Double(clip) / norm(g))
                for j in g.indices { expected[j] += Double(g[j]) * f }
            }
            var sum: [Float] = []
            let result = try #require(model.clippedGradientSum(parameters: p, batch: data, clip: clip, into: &sum))
            #expect(result.clipped == norms.filter { $0 > Double(clip) }.count, "\(type(of: model))")
            for j in sum.indices { #expect(abs(Double(sum[j]) - expected[j]) <= 1e-4 * max(1, abs(expected[j])), "\(type(of: model)) [\(j)]") }

            var mean: [Float] = []
            let meanLoss = model.lossAndGradient(parameters: p, batch: data, into: &mean)
            let unclipped = try #require(model.clippedGradientSum(parameters: p, batch: data, clip: 1e9, into: &sum))
            #expect(unclipped.clipped == 0)
            #expect(abs(unclipped.loss / Double(data.count) - meanLoss) <= 1e-5)
            for j in sum.indices { #expect(abs(Double(sum[j]) - Double(mean[j]) * Double(data.count)) <= 1e-3 * max(1, abs(Double(sum[j])))) }
        }
    }

    /// The sensitivity the noise is calibrated to: removing any one row moves the clipped sum by
    /// at most C in L2 (checked for every row of a 60-row batch, C small enough to clip most).
    @Test func removingAnyRowMovesTheSumByAtMostTheClip() throws {
        let indices = Array(100..<160)
        let data = rows(Self.wdbc.train, indices)
        for model in Self.models(dimension: data.dimension) {
            let p = Self.parameters(for: model, seed: 11)
            let clip: Float = 0.05
            var full: [Float] = []
            let all = try #require(model.clippedGradientSum(parameters: p, batch: data, clip: clip, into: &full))
            #expect(all.clipped > data.count / 2, "\(type(of: model)): C should bind for most rows")
            var largest = 0.0
            for k in indices.indices {
                var without: [Float] = []
                var rest = indices
                rest.remove(at: k)
                _ = model.clippedGradientSum(parameters: p, batch: rows(Self.wdbc.train, rest), clip: clip, into: &without)
                largest = max(largest, norm(zip(full, without).map { $0 - $1 }))
            }
            #expect(largest <= Double(clip) * (1 + 1e-4), "\(type(of: model)): \(largest) > C \(clip)")
            #expect(largest >= Double(clip) * 0.99, "\(type(of: model)): a clipped row moves the sum by C itself (\(largest))")
        }
    }

    @Test func deepSurvHasNoPerRowClipping() throws {
        let survival = MLP(dimension: 3, hidden: [4], head: .cox(.breslow))
        var sum: [Float] = []
        let data = Dataset(featureNames: ["a", "b", "c"], features: [1, 2, 3, 4, 5, 6], times: [5, 3], events: [1, 0])
        #expect(survival.clippedGradientSum(parameters: [Float](repeating: 0.1, count: survival.layout.count), batch: data, clip: 1, into: &sum) == nil)
    }

    /// gbsg2's seed-0 training rows, standardized.
    static let gbsg2: Dataset = {
        let table = try! TestData.table("gbsg2.csv")
        let split = try! TestData.split("gbsg2", seed: 0)
        var train = try! DatasetLoader.load(table, plan: .cox(), rows: split.train).dataset
        Standardization(fitting: train).apply(to: &train)
        return train
    }()

    /// Random strata's sensitivity on real gbsg2 rows: adding any one of 60 other patients (with
    /// its own label) to a 48-row batch in 6 strata changes exactly one stratum and moves the
    /// clipped sum by at most 2C — for the Cox model and for DeepSurv — and some addition moves
    /// it by more than C (the factor 2 is needed).
    @Test func addingAPatientMovesTheStratifiedSumByAtMostTwiceTheClip() throws {
        let data = Self.gbsg2
        let batchRows = Array(0..<48)
        let candidates = Array(100..<160)
        var generator = Xoshiro256(seed: 21)
        let strata = 6
        let labels = batchRows.map { _ in Int.random(in: 0..<strata, using: &generator) }
        let models: [any Model] = [CoxRegression(dimension: data.dimension), MLP(dimension: data.dimension, hidden: [8], head: .cox(.breslow))]
        for model in models {
            var p = model.initialParameters(using: &generator)
            for i in p.indices { p[i] += Float(generator.nextUnit() - 0.5) * 0.6 }
            let clip: Float = 0.5
            // The subset keeps time order; labels follow their rows.
            func sum(_ rows: [Int], _ rowLabels: [Int]) -> [Float] {
                let order = rows.indices.sorted { data.times[rows[$0]] != data.times[rows[$1]] ? data.times[rows[$0]] > data.times[rows[$1]] : rows[$0] < rows[$1] }
                let batch = data.subset(order.map { rows[$0] })
                var out: [Float] = []
                _ = RandomStrata.clippedSum(model: model, parameters: p, batch: batch, labels: order.map { rowLabels[$0] }, strata: strata, clip: clip, into: &out)
                return out
            }
            let base = sum(batchRows, labels)
            var largest = 0.0
            for k in candidates {
                let label = Int.random(in: 0..<strata, using: &generator)
                let with = sum(batchRows + [k], labels + [label])
                largest = max(largest, norm(zip(with, base).map { $0 - $1 }))
            }
            #expect(largest <= 2 * Double(clip) * (1 + 1e-5), "\(type(of: model)): \(largest) > 2C")
            #expect(largest > Double(clip), "\(type(of: model)): no addition moved the sum by more than C (\(largest))")
        }
    }

    /// Cox under DP-SGD with random strata trains (the report counts its strata's rows) and
    /// improves the partial likelihood from zero.
    @Test func stratifiedDPSGDTrainsACoxModel() throws {
        let data = Self.gbsg2
        var plan = Plan.cox(l2: 0)
        plan.learningRate = 0.5
        let model = CoxRegression(dimension: data.dimension)
        var trainer = LocalTrainer(model: model, plan: plan)
        var p = [Float](repeating: 0, count: model.layout.count)
        var generator = Xoshiro256(seed: 4)
        let before = model.loss(parameters: p, batch: data)
        let report = try #require(trainer.trainPrivately(
            parameters: &p, on: data, steps: 300, privacy: .init(samplingRate: 0.25, clip: 1, noiseMultiplier: 1, stratumSize: 8), generator: &generator))
        let after = model.loss(parameters: p, batch: data)
        #expect(report.steps == 300 && abs(Double(report.rows) / 300 - 0.25 * Double(data.count)) < 3)
        #expect(after < before - 0.02, "partial likelihood per row \(before) → \(after)")
    }

    @Test func poissonSamplingDrawsEachRowWithProbabilityQ() {
        var generator = Xoshiro256(seed: 3)
        var rows: [Int] = []
        var total = 0
        var hits = [Int](repeating: 0, count: 1000)
        for _ in 0..<2000 {
            PoissonSampler.sample(count: 1000, rate: 0.02, into: &rows, using: &generator)
            #expect(zip(rows, rows.dropFirst()).allSatisfy { $0 < $1 } && rows.allSatisfy { (0..<1000).contains($0) })
            total += rows.count
            for r in rows { hits[r] += 1 }
        }
        // 2000 draws of Binomial(1000, 0.02): mean 20 per draw, sd of the mean 0.0099·√... ≈ 0.1.
        let mean = Double(total) / 2000
        #expect(abs(mean - 20) < 0.5, "\(mean)")
        // Every row is drawn: first, middle and last rows at about 40 of 2000 draws each.
        #expect(hits.allSatisfy { $0 > 10 && $0 < 80 }, "\(hits.min()!)…\(hits.max()!)")
        PoissonSampler.sample(count: 5, rate: 1, into: &rows, using: &generator)
        #expect(rows == [0, 1, 2, 3, 4])
        PoissonSampler.sample(count: 0, rate: 0.5, into: &rows, using: &generator)
        #expect(rows.isEmpty)
        // A tiny rate and a huge gap: no trap converting the gap, nothing drawn past the end.
        for _ in 0..<100 { PoissonSampler.sample(count: 3, rate: 1e-300, into: &rows, using: &generator); #expect(rows.isEmpty) }
    }

    @Test func gaussianSamplesAreStandardNormal() {
        var generator = Xoshiro256(seed: 5)
        var gaussian = GaussianSampler()
        let n = 200_000
        var sum = 0.0, squares = 0.0, beyond2 = 0
        for _ in 0..<n {
            let z = gaussian.next(using: &generator)
            sum += z
            squares += z * z
            if abs(z) > 2 { beyond2 += 1 }
        }
        let mean = sum / Double(n)
        let variance = squares / Double(n) - mean * mean
        #expect(abs(mean) < 0.01 && abs(variance - 1) < 0.015, "mean \(mean) variance \(variance)")
        // P(|Z| > 2) = 0.0455.
        #expect(abs(Double(beyond2) / Double(n) - 0.0455) < 0.002)
    }

    /// Without noise, at q = 1 and a clip nothing reaches, a private step is the full-batch step.
    @Test func noiselessFullBatchStepIsTheOrdinaryStep() throws {
        let data = Self.wdbc.train
        var plan = Plan.logistic(l2: 0.01)
        plan.batchSize = nil
        let model = LogisticRegression(dimension: data.dimension)
        var ordinary = LocalTrainer(model: model, plan: plan)
        var privateTrainer = LocalTrainer(model: model, plan: plan)
        var a = Self.parameters(for: model, seed: 2)
        var b = a
        ordinary.train(parameters: &a, on: data, steps: 5)
        var generator = Xoshiro256(seed: 9)
        let report = try #require(privateTrainer.trainPrivately(
            parameters: &b, on: data, steps: 5, privacy: .init(samplingRate: 1, clip: 1e9, noiseMultiplier: 0), generator: &generator))
        #expect(report.steps == 5 && report.rows == 5 * data.count && report.clippedRows == 0)
        for (x, y) in zip(a, b) { #expect(abs(x - y) <= 1e-5 * max(1, abs(x)), "\(x) vs \(y)") }
    }

    /// DP-SGD learns wdbc: σ = 1, C = 1, q = 0.05, 600 steps (ε 9.1 at δ 1e-5 by the Rényi
    /// accountant, dp-accounting agreeing) reaches at least 0.93 test accuracy (non-private:
    /// 0.97), and the noise makes two generators' runs differ.
    @Test func dpSGDLearnsWDBC() throws {
        let (train, test) = Self.wdbc
        var plan = Plan.logistic(l2: 0)
        plan.learningRate = 0.5
        let model = LogisticRegression(dimension: train.dimension)
        func run(seed: UInt64) throws -> (accuracy: Double, parameters: [Float], report: PrivateStepsReport) {
            var trainer = LocalTrainer(model: model, plan: plan)
            var p = [Float](repeating: 0, count: model.layout.count)
            var generator = Xoshiro256(seed: seed)
            let report = try #require(trainer.trainPrivately(
                parameters: &p, on: train, steps: 600, privacy: .init(samplingRate: 0.05, clip: 1, noiseMultiplier: 1), generator: &generator))
            let predictions = model.predict(parameters: p, batch: test)
            let correct = zip(predictions, test.labels).filter { ($0 >= 0.5 ? 1 : 0) == $1 }.count
            return (Double(correct) / Double(test.count), p, report)
        }
        let first = try run(seed: 1)
        let second = try run(seed: 2)
        print("dp-sgd wdbc: accuracy \(first.accuracy) and \(second.accuracy), rows per step \(Double(first.report.rows) / 600) (q·n = \(0.05 * Double(train.count))), clipped \(first.report.clippedRows)")
        #expect(first.accuracy >= 0.93 && second.accuracy >= 0.93)
        #expect(first.parameters != second.parameters)
        #expect(abs(Double(first.report.rows) / 600 - 0.05 * Double(train.count)) < 2)
    }
}
