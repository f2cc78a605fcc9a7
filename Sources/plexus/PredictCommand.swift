import ArgumentParser
import Foundation
import PlexusLearning

struct Predict: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "predict",
        abstract: "Apply a saved model to the rows of a CSV file.",
        discussion: """
            The model is a final .safetensors from `plexus train --save` or `plexus run`: it \
            carries its feature names, standardization, link and, for Cox and DeepSurv, the \
            Breslow baseline cumulative hazard. The CSV's columns are matched by name (extra \
            columns are ignored; a missing one is an error naming the file and the column).

            Output (CSV, to standard output or --out): `row` (the 0-based data row), then \
            `probability` for a classifier, or `risk` (the log-risk η, higher = earlier event) \
            and `survival_at_T` = exp(−H₀(T)·e^η) for each of --times.

            Examples:
              plexus train --data Topologies/data/gbsg2.csv --plan Topologies/plans/gbsg2-cox.toml \\
                  --ties efron --save gbsg2.safetensors
              plexus predict --model gbsg2.safetensors --data Topologies/data/gbsg2.csv --times 365,730
            """
    )

    /// The largest model file read (a 1,600-wide MLP on 30 features is 200 KB).
    static let maximumModelBytes = 1 << 30

    @Option(help: "A model written by plexus train --save or plexus run.", completion: .file(extensions: ["safetensors"]))
    var model: String

    @Option(help: "The CSV file with the model's feature columns (header row).", completion: .file(extensions: ["csv"]))
    var data: String

    @Option(help: "Survival models: comma-separated times for S(t), e.g. 365,730.")
    var times: String?

    @Option(help: "Write the predictions to this CSV file instead of standard output.", completion: .file())
    var out: String?

    func parsedTimes() throws -> [Double] {
        guard let times else { return [] }
        let parts = times.split(separator: ",", omittingEmptySubsequences: false)
        guard parts.count <= 1000 else { throw ValidationError("--times takes at most 1000 times") }
        return try parts.map { part in
            let text = part.trimmingCharacters(in: .whitespaces)
            guard let t = Double(text), t.isFinite, t >= 0 else {
                throw ValidationError("--times: '\(part)' is not a finite time ≥ 0 (expected e.g. 365,730)")
            }
            return t
        }
    }

    func validate() throws { _ = try parsedTimes() }

    func run() throws {
        let bytes: [UInt8]
        let saved: SavedModel
        do {
            bytes = try CSV.readFile(path: model, maximumBytes: Self.maximumModelBytes)
        } catch {
            throw CLIError(error.description)
        }
        do {
            saved = try SavedModel(safetensors: bytes)
        } catch {
            throw CLIError("\(model): error: not a Plexus model: \(error.description)")
        }
        let predictions: Predictions
        do {
            let table = try CSV.read(path: data)
            predictions = try Predictions(model: saved, table: table, times: try parsedTimes())
        } catch let error as DataError {
            throw CLIError(error.description)
        }
        if let out {
            do {
                try Data(predictions.csv.utf8).write(to: URL(fileURLWithPath: out))
            } catch {
                throw CLIError("\(out): error: cannot write the predictions: \(error.localizedDescription)")
            }
        } else {
            print(predictions.csv, terminator: "")
        }
    }
}
