public import PlexusCore
import TOMLKit

/// Reading just the learning plan from a TOML file: a plan-only file holding a `[plan]`
/// table, or a whole topology file, whose `[network]`, `[[peer]]` and `[[link]]` are ignored.
///
/// The diagnostics are those of ``Topology/load(path:)`` for the `[plan]` table: syntax errors,
/// unknown keys, wrong types, missing required keys, values out of range.
public enum PlanFile {
    /// The plan in the file at `path`.
    ///
    /// - Throws: ``TopologyError`` with every diagnostic (warnings included) when there is
    ///   at least one error.
    public static func load(path: String) throws(TopologyError) -> Plan {
        try read(path: path).plan
    }

    /// The plan, its hash and the warnings found, from the file at `path`.
    public static func read(path: String) throws(TopologyError) -> (plan: Plan, planHash: [UInt8], warnings: [Diagnostic]) {
        switch SourceFile.read(path: path) {
        case .failure(let diagnostic): throw TopologyError(diagnostics: [diagnostic])
        case .success(let source): return try parse(source: source, path: path)
        }
    }

    /// The plan in `source`; `path` names the file in diagnostics.
    public static func parse(source: String, path: String) throws(TopologyError) -> (plan: Plan, planHash: [UInt8], warnings: [Diagnostic]) {
        let index = SourceIndex(source: source)
        let root: TOMLTable
        switch SourceFile.parseTOML(source, path: path, index: index) {
        case .failure(let diagnostic): throw TopologyError(diagnostics: [diagnostic])
        case .success(let table): root = table
        }
        var reader = Reader(path: path, index: index)
        let plan = reader.planSection(root)
        try reader.diagnostics.throwIfErrors()
        guard let plan else {
            // Unreachable: a nil plan always comes with an error. Stay safe anyway.
            throw TopologyError(diagnostics: [Diagnostic(.error, "no valid [plan] table", path: path, at: .start)])
        }
        return (plan, PlanHash.hash(plan), Diagnostic.sorted(reader.diagnostics.diagnostics))
    }
}

extension Reader {
    /// The top-level tables of a topology file.
    static let topLevelKeys = ["network", "plan", "peer", "link"]

    /// Checks the root's keys and reads `[plan]`.
    mutating func planSection(_ root: TOMLTable) -> Plan? {
        let rootRef = TableRef(table: root, section: "", displayName: "the file")
        for key in root.keys.sorted() where !Self.topLevelKeys.contains(key) {
            let position = index.header(key) ?? index.header(key + "#0") ?? keyPosition(rootRef, key)
            error("unknown table '\(key)'; expected [network], [plan], [[peer]] or [[link]]\(didYouMean(key, among: Self.topLevelKeys))", at: position)
        }
        guard let value = root["plan"] else {
            error("missing [plan] table (the learning plan: model, rounds, learning_rate, …)", at: .start)
            return nil
        }
        guard let table = value.table else {
            error("'plan' must be a table ([plan]), found \(Self.kind(value.type))", at: index.header("plan#0") ?? keyPosition(rootRef, "plan"))
            return nil
        }
        return plan(TableRef(table: table, section: "plan", displayName: "[plan]"))
    }
}
