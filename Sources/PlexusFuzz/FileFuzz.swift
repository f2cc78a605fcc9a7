import PlexusCodec
import PlexusCore
import PlexusCrypto
import PlexusGossip
import PlexusLearning
import PlexusLog
import PlexusNode
import PlexusTopology

/// State files: the fuzzer writes the body; the first byte picks whether the MAC under the fixed
/// state key (version 2), the plain checksum (version 1) or nothing is appended here. What decodes
/// survives re-encoding, and what a gossip instance accepts by `restore` is finite.
enum StateFileFuzz {
    static let dimension = 4

    static func run(_ bytes: [UInt8]) {
        guard let file = FuzzKeys.localFile(bytes) else { return }
        let key = FuzzKeys.stateKey
        guard let snapshot = try? StateFile.decode(file, planHash: FuzzKeys.planHash, parameterCount: dimension, key: key, as: FuzzLearner.self) else {
            return
        }
        // Neighbour order is free on the wire, so the oracle is idempotence of re-encoding
        // (compared bit for bit: NaN != NaN).
        let encoded = StateFile.encode(snapshot, planHash: FuzzKeys.planHash, key: key)
        let again = try? StateFile.decode(encoded, planHash: FuzzKeys.planHash, parameterCount: dimension, key: key, as: FuzzLearner.self)
        fuzzCheck(again.map { StateFile.encode($0, planHash: FuzzKeys.planHash, key: key) } == encoded, "state file does not survive re-encoding")
        var instance = GossipInstance(
            settings: GossipSettings(
                me: GossipFuzz.me, planHash: FuzzKeys.planHash, codec: .lossless, rounds: 10,
                neighbours: [GossipFuzz.neighbours[0]: Neighbour(publicKey: GossipFuzz.keys[0].publicKey, weight: 1)]
            ),
            key: FuzzKeys.key(0), learner: FuzzLearner(), initialParameters: [Float](repeating: 0, count: dimension), clock: { .zero }
        )
        guard (try? instance.restore(snapshot)) != nil else { return }
        let restored = instance.snapshot()
        fuzzCheck(allFinite(restored.parameters) && allFinite(restored.publicCopy), "restore accepted non-finite parameters")
        for n in restored.neighbours.values { fuzzCheck(n.copy.map(allFinite) ?? true, "restore accepted a non-finite copy") }
        _ = instance.resume()
    }
}

/// Topology files through the library API, as bytes and as an already-decoded string.
enum TopologyFuzz {
    static func runBytes(_ bytes: [UInt8]) {
        _ = try? Topology.parse(bytes: bytes, path: "fuzz.toml", spectralAnalysis: bytes.count < 2048)
    }

    static func runSource(_ bytes: [UInt8]) {
        let source = String(decoding: bytes, as: UTF8.self)
        _ = try? Topology.parse(source: source, path: "fuzz.toml", spectralAnalysis: bytes.count < 2048)
    }
}

/// CSV: every row has the header's width, and the line numbers increase.
enum CSVFuzz {
    static func run(_ bytes: [UInt8]) {
        guard let table = try? CSV.parse(bytes, file: "fuzz.csv") else { return }
        fuzzCheck(table.rows.count == table.lines.count, "rows and line numbers differ in count")
        for row in table.rows { fuzzCheck(row.count == table.header.count, "a row of \(row.count) fields under \(table.header.count) columns") }
        fuzzCheck(zip(table.lines, table.lines.dropFirst()).allSatisfy { $0 < $1 }, "line numbers do not increase")
    }
}

/// Key files: what parses re-encodes to the canonical line, and the line parses to the same key.
enum KeyFileFuzz {
    static func run(_ bytes: [UInt8]) {
        let contents = bytes.withUnsafeBytes { SecureBytes(copying: $0) }
        guard let key = try? KeyFile.parse(contents, length: bytes.count) else { return }
        let line = KeyFile.encodeLine(key)
        guard let again = try? KeyFile.parse(line, length: line.count) else {
            fuzzCheck(false, "the canonical line of a parsed key does not parse")
            return
        }
        fuzzCheck(again.publicKey == key.publicKey, "the canonical line parses to another key")
    }
}

/// Safetensors against a fixed layout: what decodes is finite, and re-encodes and decodes to the
/// same parameters and metadata.
enum SafetensorsFuzz {
    static let layout = ParameterLayout([(name: "weight", shape: [3, 2], penalized: true), (name: "bias", shape: [2], penalized: false)])

    static func run(_ bytes: [UInt8]) {
        savedModel(bytes)
        guard let (parameters, metadata) = try? Safetensors.decode(bytes, layout: layout) else { return }
        fuzzCheck(parameters.count == layout.count, "decoded \(parameters.count) parameters for a layout of \(layout.count)")
        fuzzCheck(allFinite(parameters), "decoded a non-finite parameter")
        let again = try? Safetensors.decode(Safetensors.encode(parameters, layout: layout, metadata: metadata), layout: layout)
        fuzzCheck(again?.parameters.map(\.bitPattern) == parameters.map(\.bitPattern) && again?.metadata == metadata, "safetensors round trip differs")
    }
}

extension SafetensorsFuzz {
    /// The model reader of `plexus predict`: never traps; what it accepts predicts finite
    /// probabilities or survival in [0, 1] for a finite row, and re-encodes to a file it reads
    /// back with the same parameters.
    static func savedModel(_ bytes: [UInt8]) {
        guard let model = try? SavedModel(safetensors: bytes) else { return }
        fuzzCheck(model.parameters.count == model.layoutModel.layout.count, "a model with the wrong parameter count")
        let d = model.featureNames.count
        guard d <= 64, model.parameters.count <= 1 << 16 else { return }
        let (scores, survival) = model.predict(rawFeatures: [Double](repeating: 0.5, count: d), rows: 1, times: [0, 1, 1e6])
        if !model.model.isSurvival { fuzzCheck(scores[0] >= 0 && scores[0] <= 1, "a probability outside [0, 1]") }
        fuzzCheck(survival.joined().allSatisfy { !($0 < 0 || $0 > 1) }, "a survival probability outside [0, 1]")
        let again = try? SavedModel(safetensors: model.encode())
        fuzzCheck(again?.parameters.map(\.bitPattern) == model.parameters.map(\.bitPattern), "a saved model does not round-trip")
    }
}

/// The convergence-log reader (JSON lines): never traps, accounts for every non-empty line (a
/// record or a skipped line), and every record it reads survives the writer's encoding unchanged.
enum ConvergenceLogFuzz {
    static func run(_ bytes: [UInt8]) {
        let text = String(decoding: bytes, as: UTF8.self)
        let log = ConvergenceLogReader.parse(text, peer: "p000")
        let lines = text.split(separator: "\n", omittingEmptySubsequences: true).count
        let headers = text.split(separator: "\n").filter { (try? ConvergenceLog.decodeLine(Array($0.utf8))).map { if case .header = $0 { true } else { false } } ?? false }.count
        fuzzCheck(log.rounds.count + log.events.count + headers + log.skippedLines == lines, "\(lines) lines, but \(log.rounds.count) rounds, \(log.events.count) events, \(headers) headers, \(log.skippedLines) skipped")
        var records = log.rounds.map(LogRecord.round) + log.events.map(LogRecord.event)
        if let header = log.header { records.append(.header(header)) }
        for record in records {
            let line = try? ConvergenceLog.encodeLine(record)
            fuzzCheck(line.map { !$0.contains(0x0A) } ?? false, "a record that does not encode to one line")
            fuzzCheck(line.flatMap { try? ConvergenceLog.decodeLine($0) } == record, "log record round trip differs")
        }
    }
}
