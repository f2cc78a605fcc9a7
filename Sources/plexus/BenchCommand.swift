import ArgumentParser

struct Bench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure the hot paths beside this machine's own limits.",
        discussion: "Build with -c release: `swift run -c release plexus bench <what>`.",
        subcommands: [BenchCodec.self, TrainBench.self, BenchNetwork.self, BenchConsensus.self]
    )
}
