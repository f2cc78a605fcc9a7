import ArgumentParser
import PlexusCore

@main
struct Plexus: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plexus",
        abstract: "Peer-to-peer decentralized learning for hospitals and research institutes.",
        discussion: """
            Every institution runs one peer node beside its own data. Nodes train a shared model \
            locally and gossip compressed, signed model deltas to the neighbours named in a \
            topology file. There is no central server.
            """,
        version: PlexusVersion.current,
        subcommands: [
            KeyGen.self,
            PubKey.self,
            Train.self,
            Predict.self,
            Bench.self,
            TopologyCommand.self,
            Simulate.self,
            Evaluate.self,
            Demo.self,
            Run.self,
            Status.self,
            Watch.self,
            Report.self,
            Version.self,
        ]
    )

    /// ArgumentParser's entry point, except that an error already phrased as a compiler-style
    /// diagnostic (`FILE:LINE: error: …`) is printed as it is, not as `Error: FILE:LINE: error: …`.
    static func main() async {
        do {
            var command = try parseAsRoot()
            if var command = command as? any AsyncParsableCommand {
                try await command.run()
            } else {
                try command.run()
            }
        } catch let error as CLIError where isDiagnostic(error.description) {
            StandardStream.error.write(error.description + "\n")
            exit(withError: ExitCode.failure)
        } catch {
            exit(withError: error)
        }
    }
}

/// `plexus version`: the same line as `plexus --version`.
struct Version: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print this build's version (the same as --version).")

    func run() {
        print(PlexusVersion.current)
    }
}
