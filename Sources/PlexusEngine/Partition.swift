import Foundation
public import PlexusCore
public import PlexusLearning

/// How a dataset is cut into sites (one per peer) for simulation and evaluation.
///
/// Text forms (`--partition`):
///
///     column:NAME          one site per value of column NAME; peer ids must match the values
///     split:FILE           the `hospitals` of a protocol split file (../shared/data/splits); its
///                          `test` rows become the common test set; `{seed}` in FILE is replaced
///     sizes:60/30/10       random sites of these relative sizes
///     iid                  random sites of equal size
///     dirichlet:ALPHA      label (or event) skew: each class spread over sites by Dirichlet(ALPHA)
public enum PartitionSpec: Hashable, Sendable, CustomStringConvertible {
    case column(String)
    case split(String)
    case sizes([Double])
    case iid
    case dirichlet(Double)

    public struct ParseError: Error, CustomStringConvertible, Sendable {
        public var description: String
    }

    public init(parsing text: String) throws(ParseError) {
        let parts = text.split(separator: ":", maxSplits: 1).map(String.init)
        switch parts.first ?? "" {
        case "column" where parts.count == 2 && !parts[1].isEmpty: self = .column(parts[1])
        case "split" where parts.count == 2 && !parts[1].isEmpty: self = .split(parts[1])
        case "iid" where parts.count == 1: self = .iid
        case "sizes" where parts.count == 2:
            let sizes = parts[1].split(separator: "/").map { Double($0) }
            guard sizes.count >= 1, sizes.allSatisfy({ ($0 ?? 0) > 0 && $0!.isFinite }) else {
                throw ParseError(description: "partition '\(text)': sizes must be positive numbers separated by '/', e.g. sizes:60/30/10")
            }
            self = .sizes(sizes.map { $0! })
        case "dirichlet" where parts.count == 2:
            guard let alpha = Double(parts[1]), alpha > 0, alpha.isFinite else {
                throw ParseError(description: "partition '\(text)': the Dirichlet concentration must be a number > 0, e.g. dirichlet:0.5")
            }
            self = .dirichlet(alpha)
        default:
            throw ParseError(description: "unknown partition '\(text)'; expected column:NAME, split:FILE, sizes:A/B/…, iid or dirichlet:ALPHA")
        }
    }

    public var description: String {
        switch self {
        case .column(let c): "column:\(c)"
        case .split(let f): "split:\(f)"
        case .sizes(let s): "sizes:" + s.map { $0 == $0.rounded() ? String(Int($0)) : "\($0)" }.joined(separator: "/")
        case .iid: "iid"
        case .dirichlet(let a): "dirichlet:\(a)"
        }
    }
}

/// A dataset cut into sites, plus the common test set.
public struct PartitionedData: Sendable {
    /// One entry per site, in the order of `siteNames`: raw (unstandardized) training rows.
    public var sites: [Dataset]
    public var siteNames: [String]
    /// The common test set, if any.
    public var test: Dataset?
}

public enum Partitioner {
    /// Cuts `table` by `spec` into `count` sites (ignored for `column:` and `split:`).
    ///
    /// - Parameters:
    ///   - filters: rows kept for training (e.g. `split=train`).
    ///   - testFilters: rows of the common test set (e.g. `split=test`); a `split:` file brings its own.
    public static func partition(
        table: CSVTable,
        plan: Plan,
        spec: PartitionSpec,
        count: Int,
        filters: [RowFilter] = [],
        testFilters: [RowFilter] = [],
        split splitPath: String? = nil,
        seed: UInt64
    ) throws(DataError) -> PartitionedData {
        var test: Dataset? = nil
        // A split file restricts training to its `train` rows and makes its `test` rows the test set.
        var trainRows: [Int]? = nil
        if let splitPath {
            let split = try SplitFile.read(path: splitPath.replacingSeed(seed), rowCount: table.rows.count)
            trainRows = split.train
            test = try DatasetLoader.load(table, plan: plan, rows: split.test, filters: testFilters).dataset
        } else if !testFilters.isEmpty {
            test = try DatasetLoader.load(table, plan: plan, filters: testFilters).dataset
        }
        switch spec {
        case .split(let path):
            let file = path.replacingSeed(seed)
            let split = try SplitFile.read(path: file, rowCount: table.rows.count)
            let sites = try split.hospitals.map { rows throws(DataError) in
                try DatasetLoader.load(table, plan: plan, rows: rows, filters: filters).dataset
            }
            let testSet = try DatasetLoader.load(table, plan: plan, rows: split.test).dataset
            return PartitionedData(sites: sites, siteNames: sites.indices.map { "site-\($0)" }, test: testSet)
        case .column(let column):
            let index = try table.columnIndex(column, role: "partition")
            var values: [String] = []
            for row in table.rows where !values.contains(row[index]) { values.append(row[index]) }
            var sites: [Dataset] = []
            var names: [String] = []
            for value in values {
                let site = try DatasetLoader.load(table, plan: plan, rows: trainRows, filters: filters + [RowFilter(column: column, value: value)]).dataset
                guard site.count > 0 else { continue }
                sites.append(site)
                names.append(value)
            }
            return PartitionedData(sites: sites, siteNames: names, test: test)
        case .sizes, .iid, .dirichlet:
            let pooled = try DatasetLoader.load(table, plan: plan, rows: trainRows, filters: filters).dataset
            var rng = Xoshiro256(seed: seed, stream: "partition")
            let assignment = assign(pooled, spec: spec, count: count, rng: &rng)
            let sites = assignment.map { pooled.subset($0) }
            return PartitionedData(sites: sites, siteNames: sites.indices.map { "site-\($0)" }, test: test)
        }
    }

    /// Row indices of `data` for each site.
    static func assign(_ data: Dataset, spec: PartitionSpec, count: Int, rng: inout Xoshiro256) -> [[Int]] {
        var order = Array(0..<data.count)
        rng.shuffle(&order)
        switch spec {
        case .sizes(let weights):
            let total = weights.reduce(0, +)
            var sites: [[Int]] = []
            var start = 0
            for (i, w) in weights.enumerated() {
                let end = i == weights.count - 1 ? order.count : min(order.count, start + Int((w / total * Double(order.count)).rounded()))
                sites.append(Array(order[start..<end]))
                start = end
            }
            return sites
        case .iid:
            return (0..<count).map { s in stride(from: s, to: order.count, by: count).map { order[$0] } }
        case .dirichlet(let alpha):
            // Per class (label, or event for survival), proportions ~ Dirichlet(alpha) over sites.
            let classes = data.task == .classification ? data.labels : data.events
            var sites = [[Int]](repeating: [], count: count)
            for cls in Set(classes).sorted() {
                let members = order.filter { classes[$0] == cls }
                let gammas = (0..<count).map { _ in gammaSample(alpha, &rng) }
                let sum = gammas.reduce(0, +)
                var start = 0
                for s in 0..<count {
                    let end = s == count - 1 ? members.count : min(members.count, start + Int((gammas[s] / sum * Double(members.count)).rounded()))
                    sites[s] += members[start..<end]
                    start = end
                }
            }
            return sites.map { $0.sorted() }
        default:
            return [order]
        }
    }

    /// Gamma(alpha, 1) by Marsaglia–Tsang (with the alpha < 1 boost).
    static func gammaSample(_ alpha: Double, _ rng: inout Xoshiro256) -> Double {
        if alpha < 1 {
            let u = max(rng.nextUnit(), 1e-300)
            return gammaSample(alpha + 1, &rng) * pow(u, 1 / alpha)
        }
        let d = alpha - 1.0 / 3, c = 1 / (9 * d).squareRoot()
        while true {
            let x = rng.nextGaussian()
            let v0 = 1 + c * x
            guard v0 > 0 else { continue }
            let v = v0 * v0 * v0
            let u = rng.nextUnit()
            if u < 1 - 0.0331 * x * x * x * x || log(max(u, 1e-300)) < 0.5 * x * x + d * (1 - v + log(v)) { return d * v }
        }
    }
}

extension String {
    func replacingSeed(_ seed: UInt64) -> String {
        var out = ""
        var rest = Substring(self)
        while let range = rest.range(of: "{seed}") {
            out += rest[..<range.lowerBound]
            out += String(seed)
            rest = rest[range.upperBound...]
        }
        return out + rest
    }
}

