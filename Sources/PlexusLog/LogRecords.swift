/// The convergence log's schema (version 1): the record types that ``ConvergenceLogWriter``
/// writes and ``ConvergenceLogReader`` reads, one JSON object per line, in the dialect of
/// ``PlexusJSON`` (sorted keys; a non-finite number is written `null` and read back as `nil`).
///
/// Three line kinds, told apart by their keys:
/// - ``LogHeader``: the first line of a file, `{"schema":"plexus.convergence",…}`;
/// - ``RoundRecord``: `{"type":"round",…}`, one per completed round;
/// - ``EventRecord``: `{"type":"event",…}`, one per notable event.
///
/// Readers are tolerant the way a log reader must be: a missing optional key takes its default
/// (0, `nil`, empty), but a line without its kind's required keys (`round` for a round, `event`
/// for an event) or with a key of the wrong type is malformed, and is skipped and counted.
public enum LogRecord: Sendable, Hashable, Codable {
    case header(LogHeader)
    case round(RoundRecord)
    case event(EventRecord)

    private enum Kind: String, CodingKey { case schema, type }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: Kind.self)
        if container.contains(.schema) {
            self = .header(try LogHeader(from: decoder))
            return
        }
        switch try container.decodeIfPresent(String.self, forKey: .type) {
        case "round": self = .round(try RoundRecord(from: decoder))
        case "event": self = .event(try EventRecord(from: decoder))
        case let other:
            throw DecodingError.dataCorruptedError(forKey: .type, in: container, debugDescription: "not a log record type: \(other ?? "none")")
        }
    }

    public func encode(to encoder: any Encoder) throws {
        switch self {
        case .header(let h): try h.encode(to: encoder)
        case .round(let r): try r.encode(to: encoder)
        case .event(let e): try e.encode(to: encoder)
        }
    }

    /// The peer the line is about.
    public var peer: String {
        switch self {
        case .header(let h): h.peer
        case .round(let r): r.peer
        case .event(let e): e.peer
        }
    }
}

/// The first line of a peer's file: `schema`, `version`, and what the run is.
public struct LogHeader: Sendable, Hashable, Codable {
    /// Always ``ConvergenceLog/schema`` ("plexus.convergence").
    public var schema: String
    public var version: Int
    public var peer: String
    public var network: String
    /// The plan hash, hex.
    public var planHash: String
    public var model: String
    public var codec: String
    public var parameters: Int
    /// Training rows at this site.
    public var samples: Int
    /// The plan's rounds (absent in logs written before it was recorded): `plexus watch`'s
    /// progress, ETA and finished marker.
    public var rounds: Int?

    public init(peer: String, network: String, planHash: String, model: String, codec: String, parameters: Int, samples: Int, rounds: Int? = nil) {
        schema = ConvergenceLog.schema
        version = ConvergenceLog.version
        self.peer = peer
        self.network = network
        self.planHash = planHash
        self.model = model
        self.codec = codec
        self.parameters = parameters
        self.samples = samples
        self.rounds = rounds
    }

    enum CodingKeys: String, CodingKey {
        case schema, version, peer, network, planHash = "plan_hash", model, codec, parameters, samples, rounds
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        schema = try c.decode(String.self, forKey: .schema)
        guard schema == ConvergenceLog.schema else {
            throw DecodingError.dataCorruptedError(forKey: .schema, in: c, debugDescription: "not a convergence log: schema '\(schema)'")
        }
        version = try c.decodeIfPresent(Int.self, forKey: .version) ?? ConvergenceLog.version
        peer = try c.decodeIfPresent(String.self, forKey: .peer) ?? ""
        network = try c.decodeIfPresent(String.self, forKey: .network) ?? ""
        planHash = try c.decodeIfPresent(String.self, forKey: .planHash) ?? ""
        model = try c.decodeIfPresent(String.self, forKey: .model) ?? ""
        codec = try c.decodeIfPresent(String.self, forKey: .codec) ?? ""
        parameters = try c.decodeIfPresent(Int.self, forKey: .parameters) ?? 0
        samples = try c.decodeIfPresent(Int.self, forKey: .samples) ?? 0
        rounds = try c.decodeIfPresent(Int.self, forKey: .rounds).flatMap { $0 >= 1 ? $0 : nil }
    }
}

/// One round line: `{"type":"round",…}`.
public struct RoundRecord: Sendable, Hashable, Codable {
    /// Wall-clock Unix seconds (0 in the simulator's deterministic mode).
    public var time: Double
    /// The simulator's clock, seconds; `nil` for a real node.
    public var virtualTime: Double?
    public var peer: String
    public var round: Int
    /// The training loss; `nil` when it was not a finite number.
    public var loss: Double?
    /// Metrics on the peer's own holdout (`simulate --holdout`); non-finite ones are left out.
    public var validation: [String: Double]
    /// Metrics on the common test set, when there is one; non-finite ones are left out.
    public var test: [String: Double]
    /// ‖x − mean of the neighbours' copies‖.
    public var consensusDistance: Double?
    /// ``consensusDistance`` ÷ ‖x‖.
    public var relativeConsensusDistance: Double?
    /// Envelope bytes this round.
    public var bytesSent: Int
    public var bytesReceived: Int
    /// float32 bytes ÷ envelope bytes.
    public var compressionRatio: Double?
    public var accepted: Int
    /// Rejection reason → count.
    public var rejected: [String: Int]
    /// Neighbour id → rounds its copy lagged.
    public var staleness: [String: Int]
    /// Phase times; `nil` when the line has none.
    public var seconds: PhaseSeconds?
    /// Under `[plan.privacy]`: the (ε, δ) this peer's training has spent by the end of this round.
    public var privacy: PrivacySpent?

    /// `{"epsilon":…,"delta":…}`.
    public struct PrivacySpent: Sendable, Hashable, Codable {
        public var epsilon: Double
        public var delta: Double
        public init(epsilon: Double, delta: Double) {
            self.epsilon = epsilon
            self.delta = delta
        }
    }

    public init(
        time: Double, virtualTime: Double? = nil, peer: String, round: Int, loss: Double?,
        validation: [String: Double] = [:], test: [String: Double] = [:],
        consensusDistance: Double?, relativeConsensusDistance: Double?,
        bytesSent: Int, bytesReceived: Int, compressionRatio: Double?, accepted: Int,
        rejected: [String: Int] = [:], staleness: [String: Int] = [:], seconds: PhaseSeconds? = nil, privacy: PrivacySpent? = nil
    ) {
        self.time = time.finiteOrNil ?? 0
        self.virtualTime = virtualTime?.finiteOrNil
        self.peer = peer
        self.round = round
        self.loss = loss?.finiteOrNil
        self.validation = validation.filter { $0.value.isFinite }
        self.test = test.filter { $0.value.isFinite }
        self.consensusDistance = consensusDistance?.finiteOrNil
        self.relativeConsensusDistance = relativeConsensusDistance?.finiteOrNil
        self.bytesSent = bytesSent
        self.bytesReceived = bytesReceived
        self.compressionRatio = compressionRatio?.finiteOrNil
        self.accepted = accepted
        self.rejected = rejected
        self.staleness = staleness
        self.seconds = seconds
        self.privacy = privacy.flatMap { $0.epsilon.isFinite && $0.delta.isFinite ? $0 : nil }
    }

    enum CodingKeys: String, CodingKey {
        case type, time, virtualTime = "virtual_time", peer, round, loss, validation, test
        case consensusDistance = "consensus_distance", relativeConsensusDistance = "consensus_distance_relative"
        case bytesSent = "bytes_sent", bytesReceived = "bytes_received", compressionRatio = "compression_ratio"
        case accepted, rejected, staleness, seconds, privacy
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let type = try c.decode(String.self, forKey: .type)
        guard type == "round" else { throw DecodingError.dataCorruptedError(forKey: .type, in: c, debugDescription: "not a round line") }
        round = try c.decode(Int.self, forKey: .round)
        time = try c.decodeNumber(forKey: .time) ?? 0
        virtualTime = try c.decodeNumber(forKey: .virtualTime)
        peer = try c.decodeIfPresent(String.self, forKey: .peer) ?? ""
        loss = try c.decodeNumber(forKey: .loss)
        validation = try c.decodeNumbers(forKey: .validation)
        test = try c.decodeNumbers(forKey: .test)
        consensusDistance = try c.decodeNumber(forKey: .consensusDistance)
        relativeConsensusDistance = try c.decodeNumber(forKey: .relativeConsensusDistance)
        bytesSent = try c.decodeIfPresent(Int.self, forKey: .bytesSent) ?? 0
        bytesReceived = try c.decodeIfPresent(Int.self, forKey: .bytesReceived) ?? 0
        compressionRatio = try c.decodeNumber(forKey: .compressionRatio)
        accepted = try c.decodeIfPresent(Int.self, forKey: .accepted) ?? 0
        rejected = try c.decodeIfPresent([String: Int].self, forKey: .rejected) ?? [:]
        staleness = try c.decodeIfPresent([String: Int].self, forKey: .staleness) ?? [:]
        seconds = try c.decodeIfPresent(PhaseSeconds.self, forKey: .seconds)
        // Tolerant, like every other field: a malformed privacy object is dropped, not fatal.
        privacy = (try? c.decodeIfPresent(PrivacySpent.self, forKey: .privacy)).flatMap { $0 }
            .flatMap { $0.epsilon.isFinite && $0.delta.isFinite ? $0 : nil }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode("round", forKey: .type)
        try c.encodeNumber(time, forKey: .time)
        if let virtualTime { try c.encodeNumber(virtualTime, forKey: .virtualTime) }
        try c.encode(peer, forKey: .peer)
        try c.encode(round, forKey: .round)
        try c.encodeNumber(loss, forKey: .loss)
        if !validation.isEmpty { try c.encode(validation.mapValues(\.finiteOrNil), forKey: .validation) }
        if !test.isEmpty { try c.encode(test.mapValues(\.finiteOrNil), forKey: .test) }
        try c.encodeNumber(consensusDistance, forKey: .consensusDistance)
        try c.encodeNumber(relativeConsensusDistance, forKey: .relativeConsensusDistance)
        try c.encode(bytesSent, forKey: .bytesSent)
        try c.encode(bytesReceived, forKey: .bytesReceived)
        try c.encodeNumber(compressionRatio, forKey: .compressionRatio)
        try c.encode(accepted, forKey: .accepted)
        try c.encode(rejected, forKey: .rejected)
        try c.encode(staleness, forKey: .staleness)
        try c.encodeIfPresent(seconds, forKey: .seconds)
        try c.encodeIfPresent(privacy, forKey: .privacy)
    }
}

/// A round's phase times, seconds: `{"train":…,"encode":…,"apply":…}`.
public struct PhaseSeconds: Sendable, Hashable, Codable {
    public var train: Double?
    public var encode: Double?
    public var apply: Double?

    public init(train: Double?, encode: Double?, apply: Double?) {
        self.train = train?.finiteOrNil
        self.encode = encode?.finiteOrNil
        self.apply = apply?.finiteOrNil
    }

    enum CodingKeys: String, CodingKey { case train, encode, apply }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        train = try c.decodeNumber(forKey: .train)
        encode = try c.decodeNumber(forKey: .encode)
        apply = try c.decodeNumber(forKey: .apply)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encodeNumber(train, forKey: .train)
        try c.encodeNumber(encode, forKey: .encode)
        try c.encodeNumber(apply, forKey: .apply)
    }
}

/// One event line: `{"type":"event","event":…,…}`. Which of the optional keys an event carries
/// depends on its kind (README, "Convergence logs"); absent ones are `nil` and not written.
public struct EventRecord: Sendable, Hashable, Codable {
    public var time: Double
    /// The simulator's clock, seconds; `nil` for a real node.
    public var virtualTime: Double?
    public var peer: String
    public var round: Int
    /// The kind: `rejected`, `keyframe_sent`, `session_opened`, …
    public var event: String
    public var from: String?
    public var to: String?
    public var with: String?
    public var reason: String?
    public var message: String?
    /// `keyframe_sent`: the version sent.
    public var version: Int?
    /// `keyframe_requested`: the version the requester holds.
    public var heldVersion: Int?
    /// `deadline_missed`: the round, and the neighbours it waited for.
    public var missedRound: Int?
    public var missing: [String]?
    /// `awaiting_first_session`, `quarantined`, `released`: the neighbour.
    public var neighbour: String?
    /// `quarantined`: what drove the score over the threshold (`rejections`, `clipping` or
    /// `distance`), and the score then.
    public var cause: String?
    public var score: Double?

    public init(
        time: Double, virtualTime: Double? = nil, peer: String, round: Int, event: String,
        from: String? = nil, to: String? = nil, with: String? = nil, reason: String? = nil, message: String? = nil,
        version: Int? = nil, heldVersion: Int? = nil, missedRound: Int? = nil, missing: [String]? = nil, neighbour: String? = nil,
        cause: String? = nil, score: Double? = nil
    ) {
        self.time = time.finiteOrNil ?? 0
        self.virtualTime = virtualTime?.finiteOrNil
        self.peer = peer
        self.round = round
        self.event = event
        self.from = from
        self.to = to
        self.with = with
        self.reason = reason
        self.message = message
        self.version = version
        self.heldVersion = heldVersion
        self.missedRound = missedRound
        self.missing = missing
        self.neighbour = neighbour
        self.cause = cause
        self.score = score?.finiteOrNil
    }

    /// The other peer, when the event names one (`from`, `to` or `with`).
    public var other: String? { from ?? to ?? with }

    enum CodingKeys: String, CodingKey {
        case type, time, virtualTime = "virtual_time", peer, round, event, from, to, with, reason, message, version
        case heldVersion = "held_version", missedRound = "missed_round", missing, neighbour, cause, score
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let type = try c.decode(String.self, forKey: .type)
        guard type == "event" else { throw DecodingError.dataCorruptedError(forKey: .type, in: c, debugDescription: "not an event line") }
        event = try c.decode(String.self, forKey: .event)
        time = try c.decodeNumber(forKey: .time) ?? 0
        virtualTime = try c.decodeNumber(forKey: .virtualTime)
        peer = try c.decodeIfPresent(String.self, forKey: .peer) ?? ""
        round = try c.decodeIfPresent(Int.self, forKey: .round) ?? 0
        from = try c.decodeIfPresent(String.self, forKey: .from)
        to = try c.decodeIfPresent(String.self, forKey: .to)
        with = try c.decodeIfPresent(String.self, forKey: .with)
        reason = try c.decodeIfPresent(String.self, forKey: .reason)
        message = try c.decodeIfPresent(String.self, forKey: .message)
        version = try c.decodeIfPresent(Int.self, forKey: .version)
        heldVersion = try c.decodeIfPresent(Int.self, forKey: .heldVersion)
        missedRound = try c.decodeIfPresent(Int.self, forKey: .missedRound)
        missing = try c.decodeIfPresent([String].self, forKey: .missing)
        neighbour = try c.decodeIfPresent(String.self, forKey: .neighbour)
        cause = try c.decodeIfPresent(String.self, forKey: .cause)
        score = try c.decodeNumber(forKey: .score)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode("event", forKey: .type)
        try c.encodeNumber(time, forKey: .time)
        if let virtualTime { try c.encodeNumber(virtualTime, forKey: .virtualTime) }
        try c.encode(peer, forKey: .peer)
        try c.encode(round, forKey: .round)
        try c.encode(event, forKey: .event)
        try c.encodeIfPresent(from, forKey: .from)
        try c.encodeIfPresent(to, forKey: .to)
        try c.encodeIfPresent(with, forKey: .with)
        try c.encodeIfPresent(reason, forKey: .reason)
        try c.encodeIfPresent(message, forKey: .message)
        try c.encodeIfPresent(version, forKey: .version)
        try c.encodeIfPresent(heldVersion, forKey: .heldVersion)
        try c.encodeIfPresent(missedRound, forKey: .missedRound)
        try c.encodeIfPresent(missing, forKey: .missing)
        try c.encodeIfPresent(neighbour, forKey: .neighbour)
        try c.encodeIfPresent(cause, forKey: .cause)
        if let score { try c.encodeNumber(score, forKey: .score) }
    }
}

/// The table `plexus evaluate --json` prints and `plexus report --evaluation` reads, in the
/// dialect of ``PlexusJSON`` (a non-finite mean or metric is `null`).
public struct EvaluationRecord: Sendable, Hashable, Codable {
    public struct Row: Sendable, Hashable, Codable {
        /// `centralized`, `isolated`, `decentralized` or (with Byzantine peers)
        /// `decentralized-worst`, the worst honest peer.
        public var setting: String
        /// The site of an `isolated` row.
        public var site: String?
        /// Mean and standard deviation of the headline metric over seeds.
        public var mean: Double?
        public var sd: Double?
        /// Per seed: metric → value (`null` when it was not a number).
        public var perSeed: [[String: Double?]]
        /// Under `[plan.privacy]` only: the ε per site this row's models spent, `.infinity` for a
        /// non-private fit (the isolated and centralized rows); `nil` for a plan without privacy.
        /// In JSON: a number, `null` (∞), or no key.
        public var epsilon: Double?

        public init(setting: String, site: String?, mean: Double?, sd: Double?, perSeed: [[String: Double?]], epsilon: Double? = nil) {
            self.setting = setting
            self.site = site
            self.mean = mean?.finiteOrNil
            self.sd = sd?.finiteOrNil
            self.perSeed = perSeed.map { $0.mapValues { $0?.finiteOrNil } }
            self.epsilon = epsilon.map { $0.isNaN || $0 < 0 ? .infinity : $0 }
        }

        enum CodingKeys: String, CodingKey { case setting, site, mean, sd, perSeed = "per_seed", epsilon }

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            setting = try c.decode(String.self, forKey: .setting)
            site = try c.decodeIfPresent(String.self, forKey: .site)
            mean = try c.decodeNumber(forKey: .mean)
            sd = try c.decodeNumber(forKey: .sd)
            perSeed = (try c.decodeIfPresent([[String: Double?]].self, forKey: .perSeed) ?? []).map { $0.mapValues { $0?.finiteOrNil } }
            if c.contains(.epsilon) {
                epsilon = try c.decodeNumber(forKey: .epsilon).flatMap { $0 >= 0 ? $0 : nil } ?? .infinity
            }
        }

        public func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(setting, forKey: .setting)
            if let site { try c.encode(site, forKey: .site) } else { try c.encodeNil(forKey: .site) }
            try c.encodeNumber(mean, forKey: .mean)
            try c.encodeNumber(sd, forKey: .sd)
            try c.encode(perSeed, forKey: .perSeed)
            if let epsilon { try c.encodeNumber(epsilon, forKey: .epsilon) }
        }
    }

    public var dataset: String
    public var topology: String
    public var model: String
    public var codec: String
    /// The headline metric (`c_index`, `auc`, …).
    public var metric: String
    public var seeds: [UInt64]
    /// Envelope bytes the decentralized run sent, per seed.
    public var decentralizedBytes: [Int]
    public var rows: [Row]
    /// The attack simulator's Byzantine peers (`PEER:ATTACK`), when there were any: the
    /// decentralized rows are then over the honest peers. Absent in an honest run.
    public var byzantine: [String]?

    public init(dataset: String, topology: String, model: String, codec: String, metric: String, seeds: [UInt64], decentralizedBytes: [Int], rows: [Row]) {
        self.dataset = dataset
        self.topology = topology
        self.model = model
        self.codec = codec
        self.metric = metric
        self.seeds = seeds
        self.decentralizedBytes = decentralizedBytes
        self.rows = rows
    }

    enum CodingKeys: String, CodingKey {
        case dataset, topology, model, codec, metric, seeds, decentralizedBytes = "decentralized_bytes", rows, byzantine
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        metric = try c.decode(String.self, forKey: .metric)
        rows = try c.decode([Row].self, forKey: .rows)
        dataset = try c.decodeIfPresent(String.self, forKey: .dataset) ?? ""
        topology = try c.decodeIfPresent(String.self, forKey: .topology) ?? ""
        model = try c.decodeIfPresent(String.self, forKey: .model) ?? ""
        codec = try c.decodeIfPresent(String.self, forKey: .codec) ?? ""
        seeds = try c.decodeIfPresent([UInt64].self, forKey: .seeds) ?? []
        decentralizedBytes = try c.decodeIfPresent([Int].self, forKey: .decentralizedBytes) ?? []
        byzantine = try c.decodeIfPresent([String].self, forKey: .byzantine)
    }
}
