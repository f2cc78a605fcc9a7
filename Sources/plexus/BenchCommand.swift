import ArgumentParser

struct Bench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure the hot paths beside this machine's own limits.",
        subcommands: [TrainBench.self]
    )
}
