import ArgumentParser
import Foundation
import PlexusCodec
import PlexusCore
import PlexusCrypto
import PlexusGossip
import PlexusLearning
import PlexusTopology

extension Bench {
    struct BenchConsensus: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "consensus",
            abstract: "Time the consensus step of every aggregation rule side by side, beside a round's training and encoding.",
            discussion: """
                One consensus step (the plan's `aggregation`: mean, clipped, trimmed-mean:B, median) \
                over --neighbours public copies of --parameters Float32 values, each rule on the same \
                buffers, median of --repeat runs; × is the ratio to "mean" (CHOCO-Gossip's step). \
                Beside it, what the rest of a round costs at that size, measured in the same run: \
                one local step of an MLP of about --parameters parameters (--features inputs, two \
                hidden layers) over --rows synthetic rows, and encode+sign of its lossless delta; \
                "of round" is the step ÷ (step + training + encode). Speed is measured, never asserted.
                """
        )

        @Option(help: "Parameters per model.")
        var parameters = 1_000_000

        @Option(help: "Neighbours (the 16-peer torus has 4).")
        var neighbours = 4

        @Option(help: "B for trimmed-mean:B.")
        var trim = 1

        @Option(help: "Rows of the local step's synthetic cohort.")
        var rows = 500

        @Option(help: "Features of the local step's synthetic cohort.")
        var features = 30

        @Option(help: "Runs per measurement; the median is reported.")
        var `repeat` = 5

        func validate() throws {
            guard (1...100_000_000).contains(parameters) else { throw ValidationError("--parameters must be from 1 to 100000000") }
            guard (1...64).contains(neighbours) else { throw ValidationError("--neighbours must be from 1 to 64") }
            guard trim >= 1, 2 * trim + 1 <= neighbours + 1 else {
                throw ValidationError("--trim must be ≥ 1 with 2·trim + 1 ≤ neighbours + 1 (the closed neighbourhood)")
            }
            guard (1...1000).contains(`repeat`) else { throw ValidationError("--repeat must be 1…1000") }
            guard (16...1_000_000).contains(rows), (1...10_000).contains(features) else {
                throw ValidationError("--rows must be 16…1000000 and --features 1…10000")
            }
        }

        func run() throws {
            let n = parameters
            let publicCopy = syntheticDelta(count: n)
            let copies = (0..<neighbours).map { k in
                publicCopy.enumerated().map { i, v in v + 0.01 * Float((i &* 2_654_435_761 &+ k &* 40_503) % 2001 - 1000) / 1000 }
            }
            let inputs = copies.enumerated().map { k, copy in
                ConsensusNeighbour(peer: PeerID("n\(k)")!, weight: 1 / Double(neighbours + 1), copy: copy)
            }
            let rules: [(String, any ConsensusRule)] = [
                ("mean", Plan.Aggregation.mean.consensusRule(step: 1)),
                ("clipped", Plan.Aggregation.clipped.consensusRule(step: 1)),
                ("trimmed-mean:\(trim)", Plan.Aggregation.trimmedMean(trim).consensusRule(step: 1)),
                ("median", Plan.Aggregation.median.consensusRule(step: 1)),
            ]
            var candidate = publicCopy

            // The rest of a round at this size: one local step of an MLP with about n parameters, and encode+sign.
            // Two hidden layers, √n then what brings the count to about n: 1M → [1000, 968] (1,000,937).
            let first = min(max(1, Int(Double(n).squareRoot())), PlanKeys.maximumHiddenWidth)
            let second = max(1, min(PlanKeys.maximumHiddenWidth, (n - features * first - first - 1) / (first + 2)))
            var plan = Plan(model: .mlp, rounds: 1, learningRate: 0.01)
            plan.hidden = [first, second]
            let model = makeModel(plan: plan, dimension: features)
            let data = TrainBenchmark.syntheticDataset(task: .classification, rows: rows, dimension: features)
            let trainTime = TrainBenchmark.epoch(plan: plan, data: data, repetitions: `repeat`)
            let key = Ed25519.PrivateKey()
            let planHash = BLAKE2b.hash256(Array("bench".utf8))
            let header = DeltaEnvelope.Header(
                kind: .keyframe, planHash: planHash, origin: PeerID("bench")!, sequence: 1, round: 1, baseSequence: 0, sampleCount: 1
            )
            let encoder = DeltaEncoder(codec: .lossless, zstdLevel: DeltaEncoder.defaultZstdLevel)
            let encodeTime = median(`repeat`) {
                _ = publicCopy.withUnsafeBufferPointer { try! encoder.seal($0, header: header, key: key) }
            }
            print("plexus bench consensus — \(n) parameters, \(neighbours) neighbours, median of \(`repeat`) runs")
            print("a round's other work here: local step of an MLP \(plan.hidden) (\(model.layout.count) parameters, \(rows) rows × \(features) features) "
                + "\(ms(trainTime)) ms; lossless encode+sign \(ms(encodeTime)) ms")
            print("")
            print(pad("aggregation", 18) + pad("step ms", 10) + pad("× mean", 9) + pad("MB/s in", 10) + "of round")
            var meanTime = 0.0
            let bytesIn = 4 * n * (neighbours + 2)  // the copies, x̂_self and x
            for (name, rule) in rules {
                let t = median(`repeat`) {
                    _ = candidate.withUnsafeMutableBufferPointer { x in
                        publicCopy.withUnsafeBufferPointer { rule.step(candidate: x, publicCopy: $0, neighbours: inputs) }
                    }
                }
                if name == "mean" { meanTime = t }
                let share = t / (t + trainTime + encodeTime)
                print(pad(name, 18) + pad(ms(t), 10) + pad(fixed(t / meanTime, 2), 9) + pad(throughput(bytesIn, t), 10) + fixed(100 * share, 1) + "%")
            }
        }
    }
}
