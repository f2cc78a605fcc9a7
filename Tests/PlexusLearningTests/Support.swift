import Foundation
import PlexusCore
import PlexusLearning

/// Paths and fixtures shared by the learning tests.
enum TestData {
    /// The repository's copy of the datasets (Topologies/data).
    static let dataDirectory: String = {
        let here = URL(fileURLWithPath: #filePath)
        return here.deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Topologies/data").path
    }()

    static func path(_ name: String) -> String { dataDirectory + "/" + name }

    static func fixture(_ name: String) throws -> Data {
        guard let url = Bundle.module.url(forResource: "Fixtures/" + name, withExtension: nil) else {
            throw FixtureError(description: "fixture \(name) is missing")
        }
        return try Data(contentsOf: url)
    }

    static func json(_ name: String) throws -> [String: Any] {
        guard let object = try JSONSerialization.jsonObject(with: fixture(name)) as? [String: Any] else {
            throw FixtureError(description: "fixture \(name) is not a JSON object")
        }
        return object
    }

    static var reference: [String: Any] { (try? json("reference.json")) ?? [:] }

    static func table(_ name: String) throws -> CSVTable { try CSV.read(path: path(name)) }

    static func split(_ dataset: String, seed: Int) throws -> SplitFile {
        try SplitFile.read(path: path("splits/\(dataset)_seed\(seed).json"))
    }
}

struct FixtureError: Error, CustomStringConvertible { let description: String }

extension Plan {
    static func logistic(l2: Double = 0) -> Plan {
        var plan = Plan(model: .logistic, rounds: 1, learningRate: 0.1)
        plan.label = "diagnosis"
        plan.l2 = l2
        return plan
    }

    static func cox(l2: Double = 0.01, ties: Plan.Ties = .breslow) -> Plan {
        var plan = Plan(model: .cox, rounds: 1, learningRate: 0.1)
        plan.time = "time"
        plan.event = "event"
        plan.l2 = l2
        plan.ties = ties
        return plan
    }
}

/// Dig into nested JSON: `value(ref, "wdbc", "0", "centralized", "acc")`.
func value(_ object: Any?, _ path: String...) -> Any? {
    var current = object
    for key in path {
        if let dict = current as? [String: Any] {
            current = dict[key]
        } else if let array = current as? [Any], let index = Int(key), array.indices.contains(index) {
            current = array[index]
        } else {
            return nil
        }
    }
    return current
}

func double(_ object: Any?, _ path: String...) -> Double {
    var current = object
    for key in path { current = value(current, key) }
    return (current as? NSNumber)?.doubleValue ?? .nan
}
