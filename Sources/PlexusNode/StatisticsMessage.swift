public import PlexusCore
public import PlexusCrypto
public import PlexusLearning

/// One site's feature statistics, signed by the site: the "one round of summed statistics" from
/// which every peer computes the same pooled standardization before training.
///
/// Peers flood these over the topology (each relays every new one to its other neighbours),
/// so every peer ends up with every site's statistics, each verified against its origin's pinned
/// key, and merges them in peer-id order — the same bits everywhere, and in the simulator.
///
///     type 3 | "PLXT" | version 1 | plan hash (32) | L | origin (L) | count u64 | dimension u32
///           | mean f64 × dimension | sum of squared deviations f64 × dimension | Ed25519 signature (64)
///
/// The signature covers BLAKE2b-256("plexus/statistics/v1" ‖ every byte from "PLXT" to the last value).
public struct StatisticsMessage: Sendable, Equatable {
    public static let type: UInt8 = 3
    public static let magic = Array("PLXT".utf8)
    public static let domain = "plexus/statistics/v1"

    public var origin: PeerID
    public var statistics: FeatureStatistics

    public init(origin: PeerID, statistics: FeatureStatistics) {
        self.origin = origin
        self.statistics = statistics
    }

    public func sealed(planHash: [UInt8], key: Ed25519.PrivateKey) -> [UInt8] {
        var w = ByteWriter()
        w.write(contentsOf: Self.magic)
        w.write(1)
        w.write(contentsOf: planHash)
        let id = Array(origin.rawValue.utf8)
        w.write(UInt8(id.count))
        w.write(contentsOf: id)
        w.write(littleEndian: UInt64(statistics.count))
        w.write(littleEndian: UInt32(statistics.mean.count))
        for m in statistics.mean { w.write(float64: m) }
        for s in statistics.sumOfSquaredDeviations { w.write(float64: s) }
        let digest = Self.digest(w.bytes)
        return [Self.type] + w.bytes + key.signature(for: digest)
    }

    static func digest(_ body: [UInt8]) -> [UInt8] {
        var hasher = BLAKE2b()
        hasher.update(domain)
        hasher.update(body)
        return hasher.finalize()
    }

    public struct Error: Swift.Error, Equatable, CustomStringConvertible, Sendable {
        public var reason: String
        public var description: String
    }

    /// Parses and verifies a statistics message from untrusted bytes.
    public init(
        verifying bytes: [UInt8],
        planHash: [UInt8],
        dimension: Int,
        publicKey: (PeerID) -> Ed25519.PublicKey?
    ) throws(Error) {
        func fail(_ reason: String, _ message: String) -> Error { Error(reason: reason, description: message) }
        guard bytes.first == Self.type else { throw fail("badMessage", "not a statistics message") }
        // type + magic + version + hash + L + ≥1 + count + dim + 2·8·dim + signature
        let expected = { (idLength: Int) in 1 + 4 + 1 + 32 + 1 + idLength + 8 + 4 + 16 * dimension + 64 }
        guard bytes.count >= expected(1), bytes.count <= expected(PeerID.maximumLength) else {
            throw fail("badLength", "statistics message of \(bytes.count) bytes; expected \(expected(1))…\(expected(PeerID.maximumLength)) for \(dimension) features")
        }
        let result: Result<(PeerID, FeatureStatistics, Int), Error> = bytes.withUnsafeBytes { raw in
          Result { () throws(Error) -> (PeerID, FeatureStatistics, Int) in
            var r = ByteReader(UnsafeRawBufferPointer(rebasing: raw[1...]))
            do {
                guard try r.readSlice(4, "magic").elementsEqual(Self.magic), try r.readByte("version") == 1 else {
                    throw fail("badMagic", "not a version-1 statistics message")
                }
                guard try r.readSlice(32, "plan hash").elementsEqual(planHash) else {
                    throw fail("planMismatch", "statistics for another plan")
                }
                let length = Int(try r.readByte("origin length"))
                let idBytes = try r.readSlice(length, "origin")
                guard idBytes.allSatisfy(PeerID.isAllowed), let origin = PeerID(String(decoding: idBytes, as: UTF8.self)) else {
                    throw fail("badOrigin", "origin is not a valid peer id")
                }
                let count = try r.read(UInt64.self, "count")
                guard Int(try r.read(UInt32.self, "dimension")) == dimension else {
                    throw fail("wrongDimension", "statistics of another number of features; the plan has \(dimension)")
                }
                var stats = FeatureStatistics(dimension: dimension)
                stats.count = Double(count)
                for j in 0..<dimension { stats.mean[j] = try r.readFloat64("mean") }
                for j in 0..<dimension { stats.sumOfSquaredDeviations[j] = try r.readFloat64("deviations") }
                guard stats.mean.allSatisfy(\.isFinite), stats.sumOfSquaredDeviations.allSatisfy({ $0.isFinite && $0 >= 0 }) else {
                    throw fail("nonFinite", "statistics hold NaN, infinite or negative values")
                }
                return (origin, stats, 1 + r.offset)
            } catch let error as Error {
                throw error
            } catch {
                throw fail("truncated", "\(error)")
            }
          }
        }
        let (origin, stats, bodyEnd) = try result.get()
        guard bytes.count == bodyEnd + 64 else { throw fail("trailingBytes", "bytes follow the statistics signature") }
        guard let key = publicKey(origin) else { throw fail("unknownOrigin", "statistics from '\(origin)', which is not in the topology") }
        let digest = Self.digest(Array(bytes[1..<bodyEnd]))
        guard key.isValidSignature(Array(bytes[bodyEnd...]), for: digest) else {
            throw fail("badSignature", "statistics signature does not verify with the key pinned for '\(origin)'")
        }
        self.origin = origin
        self.statistics = stats
    }

    /// The pooled standardization of every site's statistics, merged in peer-id order.
    public static func pooled(_ all: [PeerID: FeatureStatistics], dimension: Int) -> Standardization {
        var merged = FeatureStatistics(dimension: dimension)
        for peer in all.keys.sorted() { merged = merged.merged(with: all[peer]!) }
        return Standardization(merged)
    }
}
