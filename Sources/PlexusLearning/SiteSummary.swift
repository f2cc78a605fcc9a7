public import PlexusCore

/// What a site tells the other sites before training: the data schema it resolved from the plan
/// (feature columns by name, in the canonical order, and the target columns) and its feature
/// statistics. Every site must resolve the same schema; the pooled statistics give the one
/// standardization every site trains with.
///
/// It travels as the payload of a signed statistics message (``PlexusGossip/StatisticsRound``).
/// The format, all integers little-endian:
///
///     "PLXF" | version 1 | F u16 | F × (L u16 | UTF-8 name) | T u8 | T × (L u16 | UTF-8 name)
///            | count u64 | mean f64 × F | sum of squared deviations f64 × F
///
/// A private plan with declared bounds sends version 2, whose statistics are a
/// ``ReleasedStatistics`` (noisy sums in the bounds' normalized units), never exact ones:
///
///     "PLXF" | version 2 | (the same schema) | count u64 | Σu f64 × F | Σ(u² − ½) f64 × F
///
/// Decoding checks every bound before it reads, and refuses statistics no real rows can give:
/// more than ``maximumCount`` rows, a NaN, infinite or huge mean, a negative or infinite sum of
/// squared deviations.
public struct SiteSummary: Sendable, Equatable {
    public static let magic = Array("PLXF".utf8)
    public static let maximumFeatures = 4096
    public static let maximumNameLength = 1024
    /// The most rows a site may declare: 2⁴⁰ (about 10¹²).
    public static let maximumCount: UInt64 = 1 << 40
    /// The largest |mean| accepted; real columns (ages, sizes, timestamps in seconds) are far below.
    public static let maximumMagnitude = 1e15

    public var features: [String]
    public var targets: [String]
    /// Exact statistics (version 1); in a release, only its count is set.
    public var statistics: FeatureStatistics
    /// The private release (version 2), when the plan declares bounds.
    public var release: ReleasedStatistics?

    public init(features: [String], targets: [String], statistics: FeatureStatistics) {
        self.features = features
        self.targets = targets
        self.statistics = statistics
        self.release = nil
    }

    /// A summary that carries `release` and no exact statistics.
    public init(features: [String], targets: [String], release: ReleasedStatistics) {
        self.features = features
        self.targets = targets
        var counted = FeatureStatistics(dimension: features.count)
        counted.count = release.count
        self.statistics = counted
        self.release = release
    }

    /// The summary of a site's loaded rows under `plan`.
    public init(_ dataset: Dataset, plan: Plan) {
        self.init(features: dataset.featureNames, targets: plan.targetColumns, statistics: FeatureStatistics(dataset))
    }

    public func encoded() -> [UInt8] {
        var w = ByteWriter()
        w.write(contentsOf: Self.magic)
        w.write(release == nil ? 1 : 2)
        w.write(littleEndian: UInt16(features.count))
        for name in features { Self.write(name, &w) }
        w.write(UInt8(targets.count))
        for name in targets { Self.write(name, &w) }
        w.write(littleEndian: UInt64(statistics.count))
        if let release {
            for x in release.sums { w.write(float64: x) }
            for x in release.centredSquares { w.write(float64: x) }
        } else {
            for m in statistics.mean { w.write(float64: m) }
            for s in statistics.sumOfSquaredDeviations { w.write(float64: s) }
        }
        return w.bytes
    }

    private static func write(_ name: String, _ w: inout ByteWriter) {
        let bytes = Array(name.utf8)
        w.write(littleEndian: UInt16(bytes.count))
        w.write(contentsOf: bytes)
    }

    public struct Error: Swift.Error, Sendable, Equatable, CustomStringConvertible {
        public var reason: Reason
        public var description: String
    }

    /// Parses a summary from untrusted bytes.
    public init(decoding bytes: [UInt8]) throws(Error) {
        func fail(_ reason: Reason, _ message: String) -> Error { Error(reason: reason, description: message) }
        let result: Result<SiteSummary, Error> = bytes.withUnsafeBytes { raw in
            var r = ByteReader(raw)
            do {
                guard try r.readSlice(4, "magic").elementsEqual(Self.magic) else { return .failure(fail(.badMagic, "not a site summary")) }
                let version = try r.readByte("version")
                guard version == 1 || version == 2 else { return .failure(fail(.unsupportedVersion, "a site summary of another version")) }
                let f = Int(try r.read(UInt16.self, "feature count"))
                guard f >= 1, f <= Self.maximumFeatures else { return .failure(fail(.outOfRange, "\(f) features; 1…\(Self.maximumFeatures) allowed")) }
                func name() throws -> String? {
                    let length = Int(try r.read(UInt16.self, "name length"))
                    guard length >= 1, length <= Self.maximumNameLength else { return nil }
                    let slice = try r.readSlice(length, "name")
                    return String(validating: Array(slice), as: UTF8.self)
                }
                var features: [String] = []
                for _ in 0..<f {
                    guard let n = try name() else { return .failure(fail(.badLength, "a feature name that is empty, too long or not UTF-8")) }
                    features.append(n)
                }
                let t = Int(try r.readByte("target count"))
                guard t >= 1, t <= 2 else { return .failure(fail(.outOfRange, "\(t) targets; 1 or 2 allowed")) }
                var targets: [String] = []
                for _ in 0..<t {
                    guard let n = try name() else { return .failure(fail(.badLength, "a target name that is empty, too long or not UTF-8")) }
                    targets.append(n)
                }
                let count = try r.read(UInt64.self, "count")
                guard count >= 1, count <= Self.maximumCount else {
                    return .failure(fail(.outOfRange, "a site of \(count) rows; 1…2⁴⁰ allowed"))
                }
                if version == 2 {
                    var sums = [Double](repeating: 0, count: f), squares = sums
                    for j in 0..<f { sums[j] = try r.readFloat64("released sum") }
                    for j in 0..<f { squares[j] = try r.readFloat64("released sum of squares") }
                    guard r.isAtEnd else { return .failure(fail(.trailingBytes, "bytes follow the site summary")) }
                    guard (sums + squares).allSatisfy({ $0.isFinite && abs($0) <= Self.maximumMagnitude }) else {
                        return .failure(fail(.nonFinite, "released statistics hold NaN, infinite or values beyond ±10¹⁵"))
                    }
                    let release = ReleasedStatistics(count: Double(count), sums: sums, centredSquares: squares)
                    return .success(SiteSummary(features: features, targets: targets, release: release))
                }
                var stats = FeatureStatistics(dimension: f)
                stats.count = Double(count)
                for j in 0..<f { stats.mean[j] = try r.readFloat64("mean") }
                for j in 0..<f { stats.sumOfSquaredDeviations[j] = try r.readFloat64("sum of squared deviations") }
                guard r.isAtEnd else { return .failure(fail(.trailingBytes, "bytes follow the site summary")) }
                guard stats.mean.allSatisfy(\.isFinite), stats.sumOfSquaredDeviations.allSatisfy(\.isFinite) else {
                    return .failure(fail(.nonFinite, "statistics hold NaN or infinite values"))
                }
                let limit = Self.maximumMagnitude
                guard stats.mean.allSatisfy({ abs($0) <= limit }),
                    stats.sumOfSquaredDeviations.allSatisfy({ $0 >= 0 && $0 / stats.count <= limit * limit })
                else {
                    return .failure(fail(.implausible, "a mean beyond ±10¹⁵, a negative sum of squared deviations or a variance beyond 10³⁰"))
                }
                return .success(SiteSummary(features: features, targets: targets, statistics: stats))
            } catch {
                return .failure(fail(.truncated, "site summary cut short: \(error)"))
            }
        }
        self = try result.get()
    }

    /// How `other`'s schema differs from this one, for an error message naming the columns;
    /// `nil` when both resolve the same features, in the same order, and the same targets.
    public func schemaDifference(from other: SiteSummary) -> String? {
        guard features != other.features || targets != other.targets else { return nil }
        var parts: [String] = []
        let mine = Set(features)
        let theirs = Set(other.features)
        let extra = other.features.filter { !mine.contains($0) }
        let lacking = features.filter { !theirs.contains($0) }
        if !extra.isEmpty { parts.append("has column\(extra.count == 1 ? "" : "s") \(extra.map { "'\($0)'" }.joined(separator: ", ")) that this site lacks") }
        if !lacking.isEmpty { parts.append("lacks column\(lacking.count == 1 ? "" : "s") \(lacking.map { "'\($0)'" }.joined(separator: ", "))") }
        if extra.isEmpty && lacking.isEmpty && features != other.features { parts.append("orders its features differently") }
        if targets != other.targets {
            parts.append("targets \(other.targets.joined(separator: ", ")) where this site has \(targets.joined(separator: ", "))")
        }
        return parts.joined(separator: "; ")
    }
}

extension Plan {
    /// The plan's target columns: the label, or the survival time and event.
    public var targetColumns: [String] {
        [label, time, event].compactMap { $0 }
    }
}
