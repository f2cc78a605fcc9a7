import ArgumentParser
import Foundation
import Logging
import PlexusCodec
import PlexusCore
import PlexusCrypto
import PlexusNode

struct BenchNetwork: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "network",
        abstract: "Rounds per second and bytes per round of the real protocol over loopback TCP.",
        discussion: """
            N nodes in this process, each behind its own authenticated, encrypted mesh on \
            127.0.0.1 (3 nodes: a full mesh; 16: a 4 × 4 torus), synchronous rounds, a synthetic \
            learner (a dense small update per round) so the time is the protocol's. Beside each \
            figure, the bound: bytes on the wire ÷ loopback TCP throughput (measured in the same run) \
            plus the codec floor (zstd, BLAKE2b, Ed25519 for one encode and one decode per link, \
            spread over this machine's cores). 10M parameters run on 3 nodes only (memory).
            """
    )

    @Option(help: "Node counts, comma-separated (3 or 16).")
    var nodes = "3,16"

    @Option(help: "Parameter counts, comma-separated (31 is the wdbc logistic model).")
    var parameters = "31,1000000,10000000"

    @Option(help: "Codecs, comma-separated.")
    var codecs = "lossless,topk:0.01+f16"

    @Option(help: "Rounds per measurement (scaled down for large models).")
    var rounds = 200

    func run() async throws {
        var logger = Logger(label: "plexus.bench")
        logger.logLevel = .error
        let nodeCounts = nodes.split(separator: ",").compactMap { Int($0) }
        let sizes = parameters.split(separator: ",").compactMap { Int($0) }
        let specs = try codecs.split(separator: ",").map { try CodecSpec(parsing: String($0)) }
        let throughput = NetworkBenchmark.loopbackThroughput()
        let cores = max(1, ProcessInfo.processInfo.activeProcessorCount)
        print("plexus bench network — loopback TCP \(Int(throughput / 1e6)) MB/s (one connection), \(cores) cores")
        print(pad("nodes", 7) + pad("params", 10) + pad("codec", 16) + pad("rounds", 8) + pad("ms/round", 10) + pad("bound ms", 10) + pad("×", 6) + "bytes/round")
        for n in nodeCounts {
            for size in sizes {
                if n > 3 && size > 2_000_000 { continue }
                for spec in specs {
                    let r = size >= 5_000_000 ? 5 : size >= 500_000 ? 20 : rounds
                    let result = try await NetworkBenchmark.run(nodes: n, parameters: size, codec: spec, rounds: r, logger: logger)
                    let degree = n <= 4 ? n - 1 : 4
                    let floor = codecFloor(parameters: size, codec: spec)
                    let cpu = Double(n) * (floor.encode + Double(degree) * floor.decode) / Double(cores)
                    let bound = result.bytesPerRound / throughput + cpu
                    print(
                        pad(String(n), 7) + pad(String(size), 10) + pad(spec.description, 16) + pad(String(r), 8)
                            + pad(fixed(result.secondsPerRound * 1000, 3), 10) + pad(fixed(bound * 1000, 3), 10)
                            + pad(fixed(result.secondsPerRound / bound, 1), 6) + String(Int(result.bytesPerRound))
                    )
                }
            }
        }
        print("Flower, 3 clients on this machine (README): 0.008 s / 0.13 s / 2.6 s per round at 1K / 1M / 10M parameters (gRPC API).")
    }

    /// zstd + BLAKE2b + Ed25519 alone, for one envelope of this size and codec (seconds).
    func codecFloor(parameters: Int, codec: CodecSpec) -> (encode: Double, decode: Double) {
        let values = syntheticDelta(count: parameters)
        let encoder = DeltaEncoder(codec: codec)
        let raw = values.withUnsafeBufferPointer { encoder.rawLayout($0, reconstruct: nil) }
        let zstd = ZstdFloor(raw: raw, level: DeltaEncoder.defaultZstdLevel)
        let key = PlexusCrypto.Ed25519.PrivateKey()
        let digest = BLAKE2b.hash256(raw)
        let signature = key.signature(for: digest)
        let compress = median(3) { zstd.compress() }
        let decompress = median(3) { zstd.decompress() }
        let hash = median(3) { _ = BLAKE2b.hash256(raw) }
        let sign = median(3) { _ = key.signature(for: digest) }
        let verify = median(3) { _ = key.publicKey.isValidSignature(signature, for: digest) }
        return (compress + hash + sign, decompress + hash + verify)
    }
}
