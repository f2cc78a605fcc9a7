#if canImport(Glibc)
import Glibc
#endif
import PlexusCodec
public import PlexusCore
public import PlexusCrypto
public import PlexusGossip

/// A node's durable state: one file, `<state-dir>/<peer>.state`, replaced atomically (write a
/// temporary file, fsync it, rename it over the old one, fsync the directory) at the end of
/// every round. A crash at any moment leaves either the old file or the new one.
///
///     "PLXS" | version 3 | plan hash (32) | parameter count n (u32) | round (i64) | version (u64)
///     | x: n × f32 | x̂: n × f32 | neighbours (u32) | per neighbour: L, id, flags (u8: copy, samples,
///       neighbourhood), version (u64), round (i64), samples (u64), neighbourhood (u64), [copy: n × f32]
///     | replay entries (u32) | per entry: L, id, sequence (u64)
///     | scoring entries (u32) | per entry: L, id, score (f64 bits), quarantined (u8: 0 | 1),
///       good rounds (u32), quarantines (u32), still rounds (u32)
///     | MAC
///
/// Version 3 adds the scoring entries (peer scoring's state, so a quarantine survives a
/// restart); version 2 files (without them) are still read, authenticated the same way.
///
/// The MAC is keyed BLAKE2b-256 of everything before it under the node-local *state key*,
/// `<state-dir>/<peer>.statekey` (32 random bytes, created 0600 on first run; not the identity key,
/// which rotates). A torn write and an edit by anyone without the state key are both refused.
/// Version-1 files (a plain BLAKE2b-256 checksum) are still read, once, and rewritten as version 2
/// — but only while the node has no state key yet (an upgrade): once it has one, a version-1
/// file is a downgrade anyone could forge, and is refused.
public enum StateFile {
    static let magic = Array("PLXS".utf8)

    public struct Error: Swift.Error, CustomStringConvertible, Sendable {
        public var description: String
    }

    /// The state key of `peer` in `directory` (`<peer>.statekey`), created (32 random bytes,
    /// 0600) when `create` and absent; `nil` when absent and not `create`.
    public static func stateKey(directory: String, peer: PeerID, create: Bool) throws(Error) -> SecureBytes? {
        let path = directory + "/" + peer.rawValue + ".statekey"
        let existing = open(path, O_RDONLY | O_CLOEXEC)
        if existing >= 0 {
            defer { close(existing) }
            var info = stat()
            guard fstat(existing, &info) == 0, info.st_size == 32 else {
                throw Error(description: "\(path): not a 32-byte state key; move it away (the state files it authenticates go with it)")
            }
            // Read straight into secret storage: no copy of the key outside it.
            var complete = false
            let key = SecureBytes(count: 32) { buffer in complete = Glibc.read(existing, buffer.baseAddress, 32) == 32 }
            guard complete else { throw Error(description: "\(path): cannot read the state key") }
            return key
        }
        guard errno == ENOENT else { throw Error(description: "\(path): cannot open the state key: \(String(cString: strerror(errno)))") }
        guard create else { return nil }
        let key = SecureBytes(randomCount: 32)
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw Error(description: "\(path): cannot create the state key: \(String(cString: strerror(errno)))") }
        let written = key.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        let synced = fsync(fd) == 0
        close(fd)
        guard written == 32, synced else { throw Error(description: "\(path): cannot write the state key") }
        return key
    }


    public static func encode(_ s: GossipSnapshot, planHash: [UInt8], key: SecureBytes) -> [UInt8] {
        var w = ByteWriter(capacity: 64 + 8 * s.parameters.count)
        w.write(contentsOf: magic)
        w.write(3)
        w.write(contentsOf: planHash)
        w.write(littleEndian: UInt32(s.parameters.count))
        w.write(littleEndian: Int64(s.round))
        w.write(littleEndian: s.version)
        for v in s.parameters { w.write(float32: v) }
        for v in s.publicCopy { w.write(float32: v) }
        w.write(littleEndian: UInt32(s.neighbours.count))
        for peer in s.neighbours.keys.sorted() {
            let n = s.neighbours[peer]!
            w.write(peerID: peer)
            w.write(UInt8((n.copy != nil ? 1 : 0) | (n.sampleCount != nil ? 2 : 0) | (n.neighbourhoodSampleCount != nil ? 4 : 0)))
            w.write(littleEndian: n.version)
            w.write(littleEndian: Int64(n.round))
            w.write(littleEndian: UInt64(n.sampleCount ?? 0))
            w.write(littleEndian: UInt64(n.neighbourhoodSampleCount ?? 0))
            if let copy = n.copy { for v in copy { w.write(float32: v) } }
        }
        w.write(littleEndian: UInt32(s.replayWindow.lastAccepted.count))
        for peer in s.replayWindow.lastAccepted.keys.sorted() {
            w.write(peerID: peer)
            w.write(littleEndian: s.replayWindow.lastAccepted[peer]!)
        }
        w.write(littleEndian: UInt32(s.scoring.count))
        for peer in s.scoring.keys.sorted() {
            let p = s.scoring[peer]!
            w.write(peerID: peer)
            w.write(littleEndian: p.score.bitPattern)
            w.write(UInt8(p.quarantined ? 1 : 0))
            // Counts are validated to 0…2³¹ − 1 before a snapshot is used; clamp what is written.
            for count in [p.goodRounds, p.quarantines, p.stillRounds] { w.write(littleEndian: UInt32(clamping: count)) }
        }
        w.write(contentsOf: LocalFileMAC.mac(w.bytes, key: key))
        return w.bytes
    }


    /// Decodes a state file; `parameterCount` and `planHash` must match this node's plan.
    public static func decode<L: LocalLearner>(
        _ bytes: [UInt8], planHash: [UInt8], parameterCount n: Int, key: SecureBytes?, acceptChecksum: Bool = true, as: L.Type
    ) throws(Error) -> GossipInstance<L>.Snapshot {
        guard bytes.count >= 4 + 1 + 32 + 4 + 8 + 8 + 8 * n + 4 + 4 + 32 else { throw Error(description: "state file is truncated") }
        let body = Array(bytes.dropLast(32))
        let trailer = Array(bytes.suffix(32))
        if let problem = LocalFileMAC.problem(version: bytes[4], body: body, trailer: trailer, key: key, acceptChecksum: acceptChecksum, what: "state file", authenticatedVersions: 2...3) {
            throw Error(description: problem)
        }
        do {
            return try body.withUnsafeBytes { raw in
                var r = ByteReader(raw)
                guard try r.readSlice(4, "magic").elementsEqual(magic) else { throw Error(description: "not a Plexus state file") }
                let fileVersion = try r.readByte("version")
                guard (1...3).contains(fileVersion) else { throw Error(description: "not a Plexus state file of version 1, 2 or 3") }
                guard try r.readSlice(32, "plan hash").elementsEqual(planHash) else {
                    throw Error(description: "state file belongs to another plan; move it away to start afresh")
                }
                guard Int(try r.read(UInt32.self, "parameter count")) == n else {
                    throw Error(description: "state file holds a model of another size")
                }
                let round = Int(try r.read(Int64.self, "round"))
                let version = try r.read(UInt64.self, "version")
                func floats() throws -> [Float] { try (0..<n).map { _ in try r.readFloat32("parameters") } }
                let x = try floats()
                let xHat = try floats()
                let count = Int(try r.read(UInt32.self, "neighbour count"))
                guard count <= 100_000 else { throw Error(description: "state file lists \(count) neighbours") }
                var neighbours: [PeerID: GossipInstance<L>.PersistedNeighbour] = [:]
                for _ in 0..<count {
                    let id = try readID(&r)
                    let flags = try r.readByte("flags")
                    let v = try r.read(UInt64.self, "version")
                    let round = Int(try r.read(Int64.self, "round"))
                    let samples = Int(clamping: try r.read(UInt64.self, "samples"))
                    let hood = Int(clamping: try r.read(UInt64.self, "neighbourhood"))
                    let copy = flags & 1 != 0 ? try floats() : nil
                    neighbours[id] = .init(
                        copy: copy, version: v, round: round, sampleCount: flags & 2 != 0 ? samples : nil,
                        neighbourhoodSampleCount: flags & 4 != 0 ? hood : nil
                    )
                }
                let entries = Int(try r.read(UInt32.self, "replay entries"))
                guard entries <= 100_000 else { throw Error(description: "state file lists \(entries) replay entries") }
                var window: [PeerID: UInt64] = [:]
                for _ in 0..<entries { window[try readID(&r)] = try r.read(UInt64.self, "sequence") }
                var scoring: [PeerID: PeerScoring.Persisted] = [:]
                if fileVersion >= 3 {
                    let scored = Int(try r.read(UInt32.self, "scoring entries"))
                    guard scored <= 100_000 else { throw Error(description: "state file lists \(scored) scoring entries") }
                    for _ in 0..<scored {
                        let id = try readID(&r)
                        let score = Double(bitPattern: try r.read(UInt64.self, "score"))
                        let flag = try r.readByte("quarantined")
                        guard flag <= 1 else { throw Error(description: "state file holds a quarantine flag of \(flag)") }
                        let good = Int(try r.read(UInt32.self, "good rounds"))
                        let quarantines = Int(try r.read(UInt32.self, "quarantines"))
                        let still = Int(try r.read(UInt32.self, "still rounds"))
                        scoring[id] = PeerScoring.Persisted(score: score, quarantined: flag == 1, goodRounds: good, quarantines: quarantines, stillRounds: still)
                    }
                }
                guard r.isAtEnd else { throw Error(description: "state file has trailing bytes") }
                return GossipInstance<L>.Snapshot(
                    round: round, version: version, parameters: x, publicCopy: xHat, neighbours: neighbours,
                    replayWindow: ReplayWindow(lastAccepted: window), scoring: scoring
                )
            }
        } catch let error as Error {
            throw error
        } catch {
            throw Error(description: "state file is malformed: \(error)")
        }
    }

    private static func readID(_ r: inout ByteReader) throws -> PeerID {
        guard let id = try r.readPeerID("id") else { throw Error(description: "state file holds an invalid peer id") }
        return id
    }

    /// Writes `bytes` to `path` atomically and durably.
    public static func writeAtomically(_ bytes: [UInt8], to path: String) throws(Error) {
        let temporary = path + ".tmp"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw Error(description: "\(temporary): cannot create: \(String(cString: strerror(errno)))") }
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + offset, bytes.count - offset) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else {
                close(fd)
                throw Error(description: "\(temporary): write failed: \(String(cString: strerror(errno)))")
            }
            offset += n
        }
        guard fsync(fd) == 0 else {
            close(fd)
            throw Error(description: "\(temporary): fsync failed: \(String(cString: strerror(errno)))")
        }
        close(fd)
        guard rename(temporary, path) == 0 else { throw Error(description: "\(path): rename failed: \(String(cString: strerror(errno)))") }
        let directory = path.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/")
        let dfd = open(directory.isEmpty ? "." : directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dfd >= 0 {
            fsync(dfd)
            close(dfd)
        }
    }

    /// The file's bytes, or `nil` when it does not exist. At most 4 GiB.
    public static func read(_ path: String) throws(Error) -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 {
            if errno == ENOENT { return nil }
            throw Error(description: "\(path): cannot open: \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        var out: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            out += buffer[0..<n]
            if out.count > 1 << 32 { throw Error(description: "\(path): larger than 4 GiB") }
        }
        return out
    }
}
