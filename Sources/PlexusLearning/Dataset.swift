public import PlexusCore

/// What a model predicts: a class probability, or a survival risk.
public enum Task: String, Sendable, Hashable {
    /// Binary classification with 0/1 labels.
    case classification
    /// Right-censored survival: a time ≥ 0 and a 0/1 event per row.
    case survival
}

/// Numeric rows ready for a model: a row-major Float32 feature matrix and its targets.
///
/// Classification rows keep the order they were given in. Survival rows are stored in decreasing
/// time order (tied times keep their given order), sorted once in O(n log n) when the dataset is
/// built, so that the Cox loss walks memory sequentially in O(n); ``sourceRows`` maps every row
/// back to its row in the source table.
public struct Dataset: Sendable {
    public private(set) var task: Task
    public private(set) var featureNames: [String]
    /// Row-major, `count × dimension`.
    public internal(set) var features: [Float]
    /// One 0/1 label per row (classification); empty for survival.
    public private(set) var labels: [Float]
    /// One time ≥ 0 per row, non-increasing (survival); empty for classification.
    public private(set) var times: [Double]
    /// One 0/1 event per row (survival); empty for classification.
    public private(set) var events: [Float]
    /// Row indices by decreasing time: since survival rows are stored in that order, `0..<count`.
    /// Empty for classification. (Kept so that the Cox loss does not depend on the storage order.)
    public private(set) var descendingTimeOrder: [Int32]
    /// For each row, its 0-based data-row index in the source table (for tracing and splits).
    public private(set) var sourceRows: [Int]
    private var scratch: [Int] = []

    public var count: Int { sourceRows.count }
    public var dimension: Int { featureNames.count }

    /// A classification dataset. `features` is row-major `labels.count × featureNames.count`.
    public init(featureNames: [String], features: [Float], labels: [Float], sourceRows: [Int]? = nil) {
        precondition(features.count == labels.count * featureNames.count, "features must be count × dimension")
        self.task = .classification
        self.featureNames = featureNames
        self.features = features
        self.labels = labels
        self.times = []
        self.events = []
        self.descendingTimeOrder = []
        self.sourceRows = sourceRows ?? Array(0..<labels.count)
    }

    /// A survival dataset. `features` is row-major `times.count × featureNames.count`; the rows are
    /// stored sorted by decreasing time.
    public init(featureNames: [String], features: [Float], times: [Double], events: [Float], sourceRows: [Int]? = nil) {
        precondition(times.count == events.count, "one event per time")
        precondition(features.count == times.count * featureNames.count, "features must be count × dimension")
        let unsorted = Dataset(
            task: .survival, featureNames: featureNames, features: features, times: times, events: events,
            sourceRows: sourceRows ?? Array(0..<times.count))
        self = unsorted.emptyCopy(reservingCapacity: times.count)
        gather(from: unsorted, rows: 0..<times.count)
    }

    private init(task: Task, featureNames: [String], features: [Float], times: [Double], events: [Float], sourceRows: [Int]) {
        self.task = task
        self.featureNames = featureNames
        self.features = features
        self.labels = []
        self.times = times
        self.events = events
        self.descendingTimeOrder = []
        self.sourceRows = sourceRows
    }

    /// An empty dataset of the same shape, for use as a reusable mini-batch buffer.
    public func emptyCopy(reservingCapacity capacity: Int) -> Dataset {
        var copy = self
        copy.features = []
        copy.features.reserveCapacity(capacity * dimension)
        copy.labels = []
        copy.times = []
        copy.events = []
        copy.descendingTimeOrder = []
        copy.sourceRows = []
        copy.scratch = []
        if task == .classification { copy.labels.reserveCapacity(capacity) } else {
            copy.times.reserveCapacity(capacity)
            copy.events.reserveCapacity(capacity)
            copy.descendingTimeOrder.reserveCapacity(capacity)
            copy.scratch.reserveCapacity(capacity)
        }
        copy.sourceRows.reserveCapacity(capacity)
        return copy
    }

    /// The rows at `indices` (positions in this dataset), in that order (survival: by decreasing time).
    public func subset(_ indices: some Collection<Int>) -> Dataset {
        var out = emptyCopy(reservingCapacity: indices.count)
        out.gather(from: self, rows: indices)
        return out
    }

    /// Replaces this dataset's rows with `source`'s rows at `rows` (survival: sorted by decreasing
    /// time), reusing this dataset's storage: no allocation once the buffers are large enough.
    public mutating func gather(from source: Dataset, rows: some Collection<Int>) {
        precondition(source.featureNames == featureNames && source.task == task, "gather needs the same columns")
        scratch.removeAll(keepingCapacity: true)
        scratch.append(contentsOf: rows)
        if task == .survival {
            let t = source.times
            scratch.sort { a, b in t[a] != t[b] ? t[a] > t[b] : a < b }
        }
        let n = scratch.count
        let d = source.dimension
        features.removeAll(keepingCapacity: true)
        features.append(contentsOf: repeatElement(0, count: n * d))
        labels.removeAll(keepingCapacity: true)
        times.removeAll(keepingCapacity: true)
        events.removeAll(keepingCapacity: true)
        sourceRows.removeAll(keepingCapacity: true)
        descendingTimeOrder.removeAll(keepingCapacity: true)
        let order = scratch
        features.withUnsafeMutableBufferPointer { out in
            source.features.withUnsafeBufferPointer { x in
                for (k, r) in order.enumerated() {
                    precondition(r >= 0 && r < source.count, "row \(r) out of range")
                    (out.baseAddress! + k * d).update(from: x.baseAddress! + r * d, count: d)
                }
            }
        }
        for (k, r) in order.enumerated() {
            sourceRows.append(source.sourceRows[r])
            if task == .classification {
                labels.append(source.labels[r])
            } else {
                times.append(source.times[r])
                events.append(source.events[r])
                descendingTimeOrder.append(Int32(k))
            }
        }
    }

    /// Rows of `other` appended (same features and task).
    public mutating func append(contentsOf other: Dataset) {
        precondition(other.featureNames == featureNames && other.task == task, "append needs the same columns")
        var combined = self
        combined.features += other.features
        combined.labels += other.labels
        combined.times += other.times
        combined.events += other.events
        combined.sourceRows += other.sourceRows
        if task == .survival {
            self.gather(from: combined, rows: 0..<combined.count)
        } else {
            self = combined
        }
    }

    /// Applies `transform` to every feature value, column by column (used by ``Standardization``).
    mutating func transformFeatures(mean: [Double], scale: [Double]) {
        let d = dimension
        let m = mean.map { Float($0) }
        let s = scale.map { Float(1 / $0) }
        let n = count
        features.withUnsafeMutableBufferPointer { x in
            for r in 0..<n {
                for j in 0..<d {
                    x[r * d + j] = (x[r * d + j] - m[j]) * s[j]
                }
            }
        }
    }
}

/// A `column=value` row filter: keep the rows whose `column` cell equals `value` exactly.
public struct RowFilter: Sendable, Hashable, CustomStringConvertible {
    public var column: String
    public var value: String

    public init(column: String, value: String) {
        self.column = column
        self.value = value
    }

    /// Parses `column=value`. The first `=` separates them, so values may contain `=`; column names
    /// that contain `=` (one-hot names like `horTh=yes`) cannot be filtered on.
    public init(parsing text: String) throws(DataError) {
        guard let eq = text.firstIndex(of: "="), eq != text.startIndex else {
            throw DataError(.badFilter, file: "--where", "'\(text)' is not column=value")
        }
        self.column = String(text[..<eq])
        self.value = String(text[text.index(after: eq)...])
    }

    public var description: String { "\(column)=\(value)" }
}

/// What ``DatasetLoader/load(_:plan:rows:filters:)`` produced.
public struct LoadedData: Sendable {
    public var dataset: Dataset
    /// Rows dropped for an empty cell under `missing = "drop-row"`.
    public var droppedRows: Int
}

/// Maps a ``CSVTable`` to a ``Dataset`` by the plan: features, targets, filters, missing values.
public enum DatasetLoader {
    /// The feature columns the plan selects from `header`, by name: with ``Plan/Features/all`` every
    /// column but the targets and ``Plan/exclude``, sorted by name (so that column order in an export
    /// never matters); with a list, exactly the listed columns in the plan's order (extra columns
    /// in the export are ignored).
    public static func featureColumns(plan: Plan, table: CSVTable) throws(DataError) -> [String] {
        let targets = [plan.label, plan.time, plan.event].compactMap { $0 }
        // The targets first: an export without its label is the mismatch to name, not an
        // exclude entry it also lacks.
        for (name, role) in [(plan.label, "label"), (plan.time, "time"), (plan.event, "event")] {
            if let name { _ = try table.columnIndex(name, role: role) }
        }
        for name in plan.exclude {
            _ = try table.columnIndex(name, role: "in exclude")
        }
        switch plan.features {
        case .all:
            // The canonical order: by name (UTF-8 bytes), so every site resolves the same list
            // whatever the column order of its export.
            let names = table.header.filter { !targets.contains($0) && !plan.exclude.contains($0) }
                .sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
            guard !names.isEmpty else {
                throw DataError(.badPlan, file: table.file, line: 1, "no feature columns left after removing targets and exclude")
            }
            return names
        case .columns(let names):
            guard !names.isEmpty else {
                throw DataError(.badPlan, file: table.file, "the plan's feature list is empty")
            }
            for name in names {
                _ = try table.columnIndex(name, role: "feature")
                if targets.contains(name) {
                    throw DataError(.badPlan, file: table.file, line: 1, "column '\(name)' is both a feature and a target")
                }
            }
            return names
        }
    }

    /// Builds the dataset for `plan` from `table`.
    ///
    /// - Parameters:
    ///   - rows: 0-based data-row indices to take (a split's `train`, a site), in this order; `nil` = all rows.
    ///   - filters: every filter must match for a row to be kept (applied after `rows`).
    /// - Throws: ``DataError`` naming the file, line, column and value for the first bad cell.
    public static func load(
        _ table: CSVTable, plan: Plan, rows: [Int]? = nil, filters: [RowFilter] = []
    ) throws(DataError) -> LoadedData {
        let file = table.file
        let names = try featureColumns(plan: plan, table: table)
        let featureIndex = try names.map { (name: String) throws(DataError) -> Int in
            try table.columnIndex(name, role: "feature")
        }
        let filterIndex = try filters.map { (f: RowFilter) throws(DataError) -> Int in
            try table.columnIndex(f.column, role: "in --where \(f)")
        }
        var labelIndex = -1
        var timeIndex = -1
        var eventIndex = -1
        let task: Task = plan.model.isSurvival ? .survival : .classification
        if task == .classification {
            guard let label = plan.label else {
                throw DataError(.badPlan, file: file, "model '\(plan.model.rawValue)' needs a `label` column in the plan")
            }
            labelIndex = try table.columnIndex(label, role: "label")
        } else {
            guard let time = plan.time, let event = plan.event else {
                throw DataError(.badPlan, file: file, "model '\(plan.model.rawValue)' needs `time` and `event` columns in the plan")
            }
            timeIndex = try table.columnIndex(time, role: "time")
            eventIndex = try table.columnIndex(event, role: "event")
        }

        let selected = rows ?? Array(0..<table.rows.count)
        let d = names.count
        var features: [Float] = []
        features.reserveCapacity(selected.count * d)
        var labels: [Float] = []
        var times: [Double] = []
        var events: [Float] = []
        var sourceRows: [Int] = []
        var dropped = 0
        var rowValues = [Float](repeating: 0, count: d)

        rowLoop: for r in selected {
            guard r >= 0 && r < table.rows.count else {
                throw DataError(.badSplit, file: file, "row index \(r) is out of range (the file has \(table.rows.count) data rows)")
            }
            let row = table.rows[r]
            let line = table.lines[r]
            for (f, c) in zip(filters, filterIndex) where row[c] != f.value { continue rowLoop }

            func number(_ c: Int, role: String) throws(DataError) -> Double? {
                let text = trimmed(row[c])
                if text.isEmpty {
                    if plan.missing == .dropRow { return nil }
                    throw DataError(
                        .missingValue, file: file, line: line, column: c + 1,
                        "empty value in \(role) column '\(table.header[c])' (set missing = \"drop-row\" in the plan to skip such rows)")
                }
                guard let value = Double(text), value.isFinite else {
                    throw DataError(
                        .notNumeric, file: file, line: line, column: c + 1,
                        "value '\(row[c])' in \(role) column '\(table.header[c])' is not a finite number"
                            + (role == "feature" ? " (add the column to `exclude` if it is not a covariate)" : ""))
                }
                return value
            }
            func binary(_ c: Int, role: String) throws(DataError) -> Float? {
                guard let v = try number(c, role: role) else { return nil }
                guard v == 0 || v == 1 else {
                    throw DataError(
                        .notBinary, file: file, line: line, column: c + 1,
                        "\(role) '\(row[c])' in column '\(table.header[c])' is not 0 or 1")
                }
                return Float(v)
            }

            for (j, c) in featureIndex.enumerated() {
                guard let v = try number(c, role: "feature") else {
                    dropped += 1
                    continue rowLoop
                }
                rowValues[j] = Float(v)
            }
            if task == .classification {
                guard let y = try binary(labelIndex, role: "label") else {
                    dropped += 1
                    continue rowLoop
                }
                labels.append(y)
            } else {
                guard let t = try number(timeIndex, role: "time"), let e = try binary(eventIndex, role: "event") else {
                    dropped += 1
                    continue rowLoop
                }
                guard t >= 0 else {
                    throw DataError(
                        .negativeTime, file: file, line: line, column: timeIndex + 1,
                        "time '\(row[timeIndex])' in column '\(table.header[timeIndex])' is negative")
                }
                times.append(t)
                events.append(e)
            }
            features.append(contentsOf: rowValues)
            sourceRows.append(r)
        }
        guard !sourceRows.isEmpty else {
            let how = filters.isEmpty ? "" : " matching \(filters.map(\.description).joined(separator: " and "))"
            throw DataError(.noRows, file: file, "no rows\(how) to use (\(selected.count) rows considered, \(dropped) dropped)")
        }
        let dataset =
            task == .classification
            ? Dataset(featureNames: names, features: features, labels: labels, sourceRows: sourceRows)
            : Dataset(featureNames: names, features: features, times: times, events: events, sourceRows: sourceRows)
        return LoadedData(dataset: dataset, droppedRows: dropped)
    }

    private static func trimmed(_ s: String) -> Substring {
        var sub = Substring(s)
        while let c = sub.first, c == " " || c == "\t" { sub.removeFirst() }
        while let c = sub.last, c == " " || c == "\t" { sub.removeLast() }
        return sub
    }
}

/// Mergeable per-column statistics (count, mean, sum of squared deviations — Chan et al.), so sites
/// can pool them in one round of summed statistics.
public struct FeatureStatistics: Sendable, Hashable {
    public var count: Double
    public var mean: [Double]
    public var sumOfSquaredDeviations: [Double]

    public init(dimension: Int) {
        count = 0
        mean = [Double](repeating: 0, count: dimension)
        sumOfSquaredDeviations = [Double](repeating: 0, count: dimension)
    }

    /// Two-pass statistics of `dataset`'s features.
    public init(_ dataset: Dataset) {
        let d = dataset.dimension
        let n = dataset.count
        self.init(dimension: d)
        count = Double(n)
        guard n > 0 else { return }
        dataset.features.withUnsafeBufferPointer { x in
            for r in 0..<n { for j in 0..<d { mean[j] += Double(x[r * d + j]) } }
            for j in 0..<d { mean[j] /= Double(n) }
            for r in 0..<n {
                for j in 0..<d {
                    let dev = Double(x[r * d + j]) - mean[j]
                    sumOfSquaredDeviations[j] += dev * dev
                }
            }
        }
    }

    /// The statistics of the union of both row sets.
    public func merged(with other: FeatureStatistics) -> FeatureStatistics {
        precondition(mean.count == other.mean.count, "statistics of different dimensions")
        if count == 0 { return other }
        if other.count == 0 { return self }
        var out = FeatureStatistics(dimension: mean.count)
        out.count = count + other.count
        for j in 0..<mean.count {
            let delta = other.mean[j] - mean[j]
            out.mean[j] = mean[j] + delta * other.count / out.count
            out.sumOfSquaredDeviations[j] =
                sumOfSquaredDeviations[j] + other.sumOfSquaredDeviations[j] + delta * delta * count * other.count / out.count
        }
        return out
    }

    /// The pooled statistics of every site's, merged in the order of the sites' keys (peer ids):
    /// the one order the simulator and every node use, so that all derive the same bits.
    /// The same means and variances counted `n` times: what a site declaring `n` rows sends
    /// (`sample-lie:N`), and how a site whose count the sample bounds changed is pooled.
    public func declaring(count n: Int) -> FeatureStatistics {
        guard count > 0 else { return self }
        var out = self
        let factor = Double(n) / count
        out.count = Double(n)
        for j in out.sumOfSquaredDeviations.indices { out.sumOfSquaredDeviations[j] *= factor }
        return out
    }

    public static func pooled<Site: Comparable>(_ sites: [Site: FeatureStatistics], dimension: Int) -> FeatureStatistics {
        var merged = FeatureStatistics(dimension: dimension)
        for site in sites.keys.sorted() { merged = merged.merged(with: sites[site]!) }
        return merged
    }
}

/// The z-score transform of the protocol: subtract the mean, divide by the population standard
/// deviation of the training rows the model may see; a constant column gets scale 1.
///
/// It is part of a trained model's state: evaluation applies the same transform.
public struct Standardization: Sendable, Hashable, Codable {
    public var mean: [Double]
    public var scale: [Double]

    public init(mean: [Double], scale: [Double]) {
        precondition(mean.count == scale.count && scale.allSatisfy { $0 > 0 }, "scale must be positive, one per mean")
        self.mean = mean
        self.scale = scale
    }

    public init(_ statistics: FeatureStatistics) {
        mean = statistics.mean
        scale = statistics.sumOfSquaredDeviations.map { ssd in
            let sd = statistics.count > 0 ? (ssd / statistics.count).squareRoot() : 0
            return sd > 1e-12 ? sd : 1
        }
    }

    /// Fits the transform to `dataset`'s rows.
    public init(fitting dataset: Dataset) { self.init(FeatureStatistics(dataset)) }

    /// The identity transform.
    public static func identity(dimension: Int) -> Standardization {
        Standardization(mean: .init(repeating: 0, count: dimension), scale: .init(repeating: 1, count: dimension))
    }

    public func apply(to dataset: inout Dataset) {
        precondition(dataset.dimension == mean.count, "standardization of \(mean.count) columns applied to \(dataset.dimension)")
        dataset.transformFeatures(mean: mean, scale: scale)
    }

    public func applied(to dataset: Dataset) -> Dataset {
        var copy = dataset
        apply(to: &copy)
        return copy
    }
}
