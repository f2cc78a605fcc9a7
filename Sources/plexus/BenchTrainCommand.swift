import ArgumentParser
import Foundation
import PlexusCore
import PlexusLearning

extension Bench {
    struct TrainBench: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "train",
            abstract: "Rows per second for one epoch of each model, and the Cox gradient's growth with n.",
            discussion: """
                Synthetic data, Gaussian features. One epoch is one pass over the rows: a full-batch \
                gradient and update, or every mini-batch once. Beside logistic regression: the bound \
                set by memory bandwidth for one pass over the features (memcpy throughput measured \
                in the same run ÷ bytes per row). Build with -c release for meaningful numbers.
                """
        )

        @Option(help: "Rows for the per-model epochs.")
        var rows = 100_000

        @Option(help: "Features per row.")
        var features = 30

        @Option(help: "Largest n for the Cox gradient series (10^4 up to this, ×10).")
        var coxMax = 1_000_000

        @Option(help: "Repetitions per measurement (the best is reported).")
        var repetitions = 5

        @Option(help: "Comma-separated subset of: logistic, cox, mlp, deepsurv, large, dp, cox-growth.")
        var only: String?

        func validate() throws {
            guard rows >= 16 else { throw ValidationError("--rows must be at least 16") }
            guard (1...100_000).contains(features) else { throw ValidationError("--features must be from 1 to 100000") }
            guard repetitions >= 1 else { throw ValidationError("--repetitions must be at least 1") }
            guard coxMax >= 10_000 else { throw ValidationError("--cox-max must be at least 10000") }
        }

        private func wanted(_ name: String) -> Bool {
            guard let only else { return true }
            return only.split(separator: ",").contains { $0 == name }
        }

        func run() throws {
            let bandwidth = TrainBenchmark.memcpyBandwidth(repetitions: repetitions)
            let bytesPerRow = Double(features * MemoryLayout<Float>.size)
            let bound = bandwidth / bytesPerRow
            print("memcpy bandwidth (256 MiB buffers): \(format(bandwidth / 1e9, 2)) GB/s")
            print("one pass over \(features) Float32 features = \(Int(bytesPerRow)) bytes/row → bound \(millions(bound)) rows/s\n")

            let classification = TrainBenchmark.syntheticDataset(task: .classification, rows: rows, dimension: features)
            let survival = TrainBenchmark.syntheticDataset(task: .survival, rows: rows, dimension: features)
            print("one epoch, \(rows) rows × \(features) features:")
            print(pad("model", 34) + pad("rows/s", 14) + "seconds")
            func report(_ name: String, _ seconds: Double, rows: Int, bound: Double? = nil) {
                var line = pad(name, 34) + pad(millions(Double(rows) / seconds), 14) + format(seconds, 4)
                if let bound {
                    line += "   (\(format(100 * Double(rows) / seconds / bound, 0))% of the memory bound \(millions(bound)))"
                }
                print(line)
            }
            func plan(_ model: Plan.Model, batch: Int? = nil, optimizer: Plan.Optimizer = .sgd) -> Plan {
                var p = Plan(model: model, rounds: 1, learningRate: 0.01)
                p.batchSize = batch
                p.optimizer = optimizer
                p.hidden = [32]
                return p
            }
            if wanted("logistic") {
            report("logistic, full batch", TrainBenchmark.epoch(plan: plan(.logistic), data: classification, repetitions: repetitions),
                   rows: rows, bound: bound)
            report("logistic, mini-batch 256", TrainBenchmark.epoch(plan: plan(.logistic, batch: 256), data: classification, repetitions: repetitions),
                   rows: rows, bound: bound)
            }
            if wanted("cox") {
            report("cox, full batch", TrainBenchmark.epoch(plan: plan(.cox), data: survival, repetitions: repetitions), rows: rows)
            }
            if wanted("mlp") {
            report("mlp [32], full batch, adam", TrainBenchmark.epoch(plan: plan(.mlp, optimizer: .adam), data: classification, repetitions: repetitions), rows: rows)
            }
            if wanted("deepsurv") {
            report("deepsurv [32], full batch, adam", TrainBenchmark.epoch(plan: plan(.deepsurv, optimizer: .adam), data: survival, repetitions: repetitions), rows: rows)
            }
            if wanted("large") {
                // The same pass with the data far beyond the last-level cache.
                let big = TrainBenchmark.syntheticDataset(task: .classification, rows: rows * 10, dimension: features)
                report("logistic, full batch, \(rows * 10) rows", TrainBenchmark.epoch(plan: plan(.logistic), data: big, repetitions: repetitions),
                       rows: rows * 10, bound: bound)
            }

            if wanted("dp") {
                // DP-SGD (issue 15) beside the same plan without privacy, in this run: the cost of
                // Poisson batches, per-row clipping and the noise.
                print("\nDP-SGD (q = batch ÷ n, C = 1, σ = 1) against the same epoch without privacy:")
                print(pad("model", 34) + pad("private s", 12) + pad("plain s", 12) + "ratio")
                for (name, p, batch) in [("logistic, full batch", plan(.logistic), nil as Int?),
                                         ("logistic, batch 256", plan(.logistic, batch: 256), 256),
                                         ("mlp [32], full batch, adam", plan(.mlp, optimizer: .adam), nil),
                                         ("mlp [32], batch 256, adam", plan(.mlp, batch: 256, optimizer: .adam), 256)] {
                    let plain = TrainBenchmark.epoch(plan: p, data: classification, repetitions: repetitions)
                    let dp = TrainBenchmark.privateEpoch(plan: p, data: classification, batch: batch, repetitions: repetitions)
                    print(pad(name, 34) + pad(format(dp, 4), 12) + pad(format(plain, 4), 12) + format(dp / plain, 2) + "×")
                }
            }

            guard wanted("cox-growth") else { return }
            print("\nCox loss and gradient (\(features) features), rows already in time order; sorting is once per dataset:")
            print(pad("n", 10) + pad("gradient s", 13) + pad("ns/row", 10) + pad("gather+sort s", 15) + "sort ns/(n·log2 n)")
            var n = 10_000
            while n <= coxMax {
                let (g, s) = TrainBenchmark.coxGradient(rows: n, dimension: features, repetitions: repetitions)
                let nlogn = Double(n) * log2(Double(n))
                print(pad("\(n)", 10) + pad(format(g, 5), 13) + pad(format(g / Double(n) * 1e9, 1), 10) + pad(format(s, 5), 15)
                      + format(s / nlogn * 1e9, 2))
                n *= 10
            }
        }

        private func pad(_ s: String, _ width: Int) -> String {
            s.count >= width ? s + " " : s + String(repeating: " ", count: width - s.count)
        }
        private func format(_ x: Double, _ digits: Int) -> String { String(format: "%.\(digits)f", x) }
        private func millions(_ x: Double) -> String { String(format: "%.1f M", x / 1e6) }
    }
}
