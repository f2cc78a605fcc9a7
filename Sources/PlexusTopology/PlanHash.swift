public import PlexusCore
import PlexusCrypto

/// The plan hash: BLAKE2b-256 over the canonical encoding of a parsed ``Plan``.
///
/// Because the hash is taken over the parsed value with every default filled in — not over
/// the text — it does not depend on key order, whitespace, comments, number spelling
/// (`1e-2` = `0.01`), or whether a default was written out or left implicit. Codec strings are
/// canonicalised by ``PlanParser`` (`topk:0.010` is stored as `topk:0.01`).
///
/// Canonical encoding, version 1 (all integers little-endian):
///
///     "plexus-plan-v1"                     14 ASCII bytes, the domain tag
///     then each field, in this order:
///       model              string
///       features           0x00 (all) | 0x01 ‖ list of strings
///       exclude            list of strings
///       label, time, event optional string
///       missing            string (the raw value: "error" | "drop-row")
///       hidden             list of int
///       rounds             int
///       local_steps        int
///       learning_rate      float
///       l2                 float
///       optimizer          string
///       momentum           float
///       batch_size         optional int
///       proximal           float
///       codec              string (canonical CodecSpec form)
///       mixing             string
///       consensus_step     float
///       synchrony          string
///       round_deadline_ms  int
///       max_staleness      int
///       seed               8 bytes, UInt64
///     then the keys added since version 1, in this order, each only when its value is not
///     the default — so a plan that leaves them at their defaults hashes as it did before
///     they existed (the committed vectors stand):
///       aggregation        string "aggregation" ‖ string (Plan.Aggregation's description,
///                          e.g. "clipped", "trimmed-mean:2"); absent for "mean"
///       max_sample_ratio   string "max_sample_ratio" ‖ float; absent for 4
///       consensus_rounds   string "consensus_rounds" ‖ int; absent for 0
///       clip_anchor        string "clip_anchor" ‖ float; absent for 0
///       ties               string "ties" ‖ string ("efron"); absent for "breslow"
///       privacy            string "privacy" ‖ float delta ‖ float clip ‖ float sampling ‖
///                          (0x00 ‖ float noise_multiplier | 0x01 ‖ float epsilon) ‖
///                          int stratum_size ‖ [string "bounds" ‖ varint count ‖
///                          (string name ‖ float lower ‖ float upper) × count, by name ‖
///                          float statistics_noise_multiplier ‖ [string "default_bound" ‖
///                          float lower ‖ float upper] — only with bounds or default_bound];
///                          absent without a [plan.privacy] table
///
///     Each such entry starts with its key's name, so the encoding stays unambiguous however
///     many of them are present.
///
///     string   = varint(UTF-8 byte count) ‖ UTF-8 bytes
///     list     = varint(element count) ‖ elements
///     optional = 0x00 | 0x01 ‖ value
///     int      = 8 bytes, two's complement Int64
///     float    = 8 bytes, IEEE 754 binary64 bit pattern; -0.0 is written as +0.0
///     varint   = unsigned LEB128 (PlexusCore's ByteWriter)
///
/// A field added to ``Plan`` MUST be appended here — as a named entry written only when it
/// differs from its default, like `aggregation`, so existing plans keep their hashes — and the
/// tag bumped if old hashes must stop matching.
public enum PlanHash {
    public static let domain = "plexus-plan-v1"

    /// The 32-byte hash of `plan`.
    public static func hash(_ plan: Plan) -> [UInt8] {
        BLAKE2b.hash256(canonicalEncoding(plan))
    }

    /// Lowercase hex, for printing.
    public static func hex(_ hash: [UInt8]) -> String {
        let digits = Array("0123456789abcdef")
        var s = ""
        s.reserveCapacity(hash.count * 2)
        for b in hash {
            s.append(digits[Int(b >> 4)])
            s.append(digits[Int(b & 0x0F)])
        }
        return s
    }

    /// The bytes that are hashed; see the type's documentation.
    public static func canonicalEncoding(_ plan: Plan) -> [UInt8] {
        var w = ByteWriter(capacity: 256)
        w.write(contentsOf: Array(domain.utf8))
        func string(_ s: String) {
            let bytes = Array(s.utf8)
            w.write(varint: UInt64(bytes.count))
            w.write(contentsOf: bytes)
        }
        func strings(_ list: [String]) {
            w.write(varint: UInt64(list.count))
            list.forEach(string)
        }
        func optionalString(_ s: String?) {
            if let s {
                w.write(UInt8(1))
                string(s)
            } else {
                w.write(UInt8(0))
            }
        }
        func int(_ n: Int) { w.write(littleEndian: Int64(n)) }
        func float(_ x: Double) { w.write(float64: x == 0 ? 0 : x) }

        string(plan.model.rawValue)
        switch plan.features {
        case .all: w.write(UInt8(0))
        case .columns(let columns):
            w.write(UInt8(1))
            strings(columns)
        }
        strings(plan.exclude)
        optionalString(plan.label)
        optionalString(plan.time)
        optionalString(plan.event)
        string(plan.missing.rawValue)
        w.write(varint: UInt64(plan.hidden.count))
        plan.hidden.forEach(int)
        int(plan.rounds)
        int(plan.localSteps)
        float(plan.learningRate)
        float(plan.l2)
        string(plan.optimizer.rawValue)
        float(plan.momentum)
        if let b = plan.batchSize {
            w.write(UInt8(1))
            int(b)
        } else {
            w.write(UInt8(0))
        }
        float(plan.proximal)
        string(plan.codec)
        string(plan.mixing.rawValue)
        float(plan.consensusStep)
        string(plan.synchrony.rawValue)
        int(plan.roundDeadlineMilliseconds)
        int(plan.maxStaleness)
        w.write(littleEndian: plan.seed)
        if plan.aggregation != .mean {
            string("aggregation")
            string(plan.aggregation.description)
        }
        let defaults = Plan(model: plan.model, rounds: plan.rounds, learningRate: plan.learningRate)
        if plan.maxSampleRatio != defaults.maxSampleRatio {
            string("max_sample_ratio")
            float(plan.maxSampleRatio)
        }
        if plan.consensusRounds != defaults.consensusRounds {
            string("consensus_rounds")
            int(plan.consensusRounds)
        }
        if plan.clipAnchor != defaults.clipAnchor {
            string("clip_anchor")
            float(plan.clipAnchor)
        }
        if plan.ties != defaults.ties {
            string("ties")
            string(plan.ties.rawValue)
        }
        if let privacy = plan.privacy {
            string("privacy")
            float(privacy.delta)
            float(privacy.clip)
            float(privacy.sampling)
            switch privacy.noise {
            case .multiplier(let sigma):
                w.write(UInt8(0))
                float(sigma)
            case .epsilon(let epsilon):
                w.write(UInt8(1))
                float(epsilon)
            }
            int(privacy.stratumSize)
            if privacy.releasesStatistics {
                string("bounds")
                w.write(varint: UInt64(privacy.bounds.count))
                for bound in privacy.bounds {
                    string(bound.name)
                    float(bound.lower)
                    float(bound.upper)
                }
                float(privacy.statisticsNoiseMultiplier)
                if let d = privacy.defaultBound {
                    string("default_bound")
                    float(d.lower)
                    float(d.upper)
                }
            }
        }
        return w.bytes
    }
}
