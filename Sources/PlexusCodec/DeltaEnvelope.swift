public import PlexusCore
public import PlexusCrypto

/// The signed unit that travels between peers: one compressed model delta (or keyframe) and
/// everything a receiver needs to check it before use.
///
/// Byte layout, format version 1. Integers are little-endian; offsets after the origin id are
/// relative to its end (`L` bytes).
///
///      0       4       5       6       7       8               12
///      +-------+-------+-------+-------+-------+---------------+
///      | magic "PLXD"  |version| kind  | codec |cbyte| cword  |
///      +---------------+-------+-------+-------+-----+---------+
///     12                                                      44
///      |                 plan hash (32 bytes, BLAKE2b-256)      |
///      +-------+-----------------------------------------------+
///     44      45                                          45+L
///      |   L   |            origin peer id (L = 1…64 ASCII)    |
///      +-------+-----------------------------------------------+
///      +0: sequence u64 | +8: round u64 | +16: base sequence u64
///      +24: parameter count u32 | +28: sample count u64 | +36: neighbourhood sample count u64
///      +44: raw length u32 | +48: payload length u32 (P)
///      +52: payload: P bytes, one zstd frame
///      +52+P: signature, 64 bytes
///
/// - `version` is 1. `kind` is 0 for a delta, 1 for a keyframe (the full public copy).
/// - `codec` is 0 lossless, 1 f16, 2 bf16, 3 int8, 4 top-k. `cbyte` is top-k's value format
///   (0 f32, 1 f16, 2 int8) and 0 otherwise; `cword` (u32) is int8's chunk, top-k's k, and 0 otherwise.
/// - `sequence` is the version of the origin's public copy that the envelope brings a receiver
///   to: versions count from 1 and only go up, across restarts too. A delta takes a receiver
///   from version `base sequence` (always `sequence − 1` for Plexus's own nodes) to `sequence`; a
///   keyframe carries the whole copy at version `sequence` and names no base (0). A delta and a
///   keyframe of the same version carry the same sequence, so a receiver accepts at most one.
/// - `sample count` is the origin's number of training rows n_j; `neighbourhood sample count`
///   is S_j = n_j + Σ n_k over the origin's neighbours k. Receivers weight the origin's model by
///   p_ij = n_j ÷ max(S_i, S_j) (PlexusGossip's `MixingWeights`).
/// - Ranges, checked before the signature (a violation is rejected as `outOfRange`):
///   `sample count` ≤ 2⁴⁰ (``maximumSampleCount``), `neighbourhood sample count` ≤ 2⁵²
///   (``maximumNeighbourhoodSampleCount``: 2⁴⁰ for each of up to 4096 sites of a closed
///   neighbourhood) and, unless 0, ≥ `sample count`, `round` ≤ 2³² (``maximumRound``; plans run at most 10⁷ rounds). Sums of
///   counts that pass these checks cannot overflow a 64-bit integer, and are exact in a Double.
/// - `codec`: a receiver that knows its plan (``EnvelopeVerifier/init(planHash:parameterCount:codec:)``)
///   accepts a delta only in the plan's codec and a keyframe only as lossless — a keyframe is
///   the whole public copy and MUST be bit-exact — and rejects anything else as `wrongCodec`.
/// - `raw length` is the size of the codec's layout before zstd; the zstd frame MUST declare
///   exactly this content size and be the whole payload.
/// - The signature is Ed25519 (RFC 8032, pure) by the origin's key over
///   BLAKE2b-256(`"plexus/delta/v1"` ‖ every byte before the signature).
/// - Nothing may follow the signature.
///
/// Codec raw layouts (before zstd), for `n` values:
/// - lossless: the float32 bit patterns byte-shuffled into 4 planes — byte 0 of every value,
///   then byte 1, byte 2, byte 3 (4n bytes).
/// - f16 / bf16: the 16-bit patterns (round to nearest even; f16 clamps to ±65504) in 2 planes (2n bytes).
/// - int8: ⌈n/chunk⌉ float32 scales (absmax/127 of each chunk), then n int8 values in −127…127;
///   a value decodes as q · scale.
/// - top-k: k unsigned LEB128 varints — the first index, then the gaps to each next index
///   (≥ 1: indices strictly increase, all < n) — then the k values: float32, float16, or one
///   float32 scale followed by k int8. Entries not listed are zero.
public struct DeltaEnvelope: Hashable, Sendable {
    public static let magic: [UInt8] = Array("PLXD".utf8)
    public static let formatVersion: UInt8 = 1
    /// The signature's domain separation string.
    public static let domain = "plexus/delta/v1"
    /// The largest sample count (training rows of one site) an envelope may declare: 2⁴⁰.
    public static let maximumSampleCount: UInt64 = 1 << 40
    /// The largest neighbourhood sample count an envelope may declare: 2⁵² = 2⁴⁰ × 4096, room for
    /// a closed neighbourhood of 4096 sites at the maximum sample count each.
    public static let maximumNeighbourhoodSampleCount: UInt64 = 1 << 52
    /// The largest round an envelope may carry: 2³² (a plan has at most 10⁷ rounds).
    public static let maximumRound: UInt64 = 1 << 32

    /// Header bytes besides the origin id.
    public static let fixedHeaderByteCount = 45 + 52
    public static let signatureByteCount = Ed25519.signatureByteCount

    public enum Kind: UInt8, Hashable, Sendable {
        case delta = 0
        case keyframe = 1
    }

    public struct Header: Hashable, Sendable {
        public var kind: Kind
        public var planHash: [UInt8]
        public var origin: PeerID
        public var sequence: UInt64
        public var round: UInt64
        /// The sequence this delta applies to; 0 for a keyframe.
        public var baseSequence: UInt64
        public var sampleCount: UInt64
        /// The origin's sample count plus its neighbours' (as far as it knows them): S_j in the
        /// engine's mixing weights p_ij = n_j ÷ max(S_i, S_j). 0 when unused.
        public var neighbourhoodSampleCount: UInt64

        public init(
            kind: Kind,
            planHash: [UInt8],
            origin: PeerID,
            sequence: UInt64,
            round: UInt64,
            baseSequence: UInt64,
            sampleCount: UInt64,
            neighbourhoodSampleCount: UInt64 = 0
        ) {
            self.kind = kind
            self.planHash = planHash
            self.origin = origin
            self.sequence = sequence
            self.round = round
            self.baseSequence = baseSequence
            self.sampleCount = sampleCount
            self.neighbourhoodSampleCount = neighbourhoodSampleCount
        }
    }

    public var header: Header
    public var delta: EncodedDelta

    public init(header: Header, delta: EncodedDelta) {
        self.header = header
        self.delta = delta
    }

    /// The envelope's bytes, signed by `key` (which MUST be the origin's).
    ///
    /// ``DeltaEncoder/seal(_:header:key:reconstruct:)`` produces the same bytes without first
    /// building an ``EncodedDelta``.
    public func sealed(by key: Ed25519.PrivateKey) -> [UInt8] {
        var bytes = Self.headerBytes(
            header, codec: delta.codec, parameterCount: delta.parameterCount, rawLength: delta.rawLength,
            payloadLength: delta.payload.count
        )
        bytes.reserveCapacity(bytes.count + delta.payload.count + Self.signatureByteCount)
        bytes.append(contentsOf: delta.payload)
        bytes.append(contentsOf: key.signature(for: Self.signedDigest(bytes)))
        return bytes
    }

    /// Everything before the payload.
    static func headerBytes(
        _ header: Header,
        codec: WireCodec,
        parameterCount: Int,
        rawLength: Int,
        payloadLength: Int
    ) -> [UInt8] {
        precondition(header.planHash.count == 32, "plan hash must be 32 bytes")
        var w = ByteWriter(capacity: fixedHeaderByteCount + PeerID.maximumLength)
        w.write(contentsOf: magic)
        w.write(formatVersion)
        w.write(header.kind.rawValue)
        w.write(codec.id)
        switch codec {
        case .topK(let k, let values):
            w.write(values.rawValue)
            w.write(littleEndian: UInt32(k))
        case .int8(let chunk):
            w.write(0)
            w.write(littleEndian: UInt32(chunk))
        default:
            w.write(0)
            w.write(littleEndian: UInt32(0))
        }
        w.write(contentsOf: header.planHash)
        w.write(peerID: header.origin)
        w.write(littleEndian: header.sequence)
        w.write(littleEndian: header.round)
        w.write(littleEndian: header.baseSequence)
        w.write(littleEndian: UInt32(parameterCount))
        w.write(littleEndian: header.sampleCount)
        w.write(littleEndian: header.neighbourhoodSampleCount)
        w.write(littleEndian: UInt32(rawLength))
        w.write(littleEndian: UInt32(payloadLength))
        return w.bytes
    }

    /// BLAKE2b-256 of the domain string followed by `body` (everything before the signature).
    static func signedDigest(_ body: [UInt8]) -> [UInt8] {
        body.withUnsafeBytes { signedDigest($0) }
    }

    static func signedDigest(_ body: UnsafeRawBufferPointer) -> [UInt8] {
        var hasher = BLAKE2b()
        hasher.update(domain)
        hasher.update(body)
        return hasher.finalize()
    }
}

/// Parses and verifies envelopes from untrusted bytes, against what the receiver expects.
///
/// Checks run cheapest first and nothing is allocated before the counts it depends on are
/// checked: the header's fields and lengths, then the plan hash and parameter count, then the
/// origin's pinned key and the signature; only a verified envelope's payload is decompressed.
public struct EnvelopeVerifier: Sendable {
    public var planHash: [UInt8]
    public var parameterCount: Int
    /// The plan's codec, when known: deltas MUST use it and keyframes MUST be lossless
    /// (otherwise `wrongCodec`). `nil` accepts any codec (tools that read foreign envelopes).
    public var codec: CodecSpec?

    public init(planHash: [UInt8], parameterCount: Int, codec: CodecSpec? = nil) {
        self.planHash = planHash
        self.parameterCount = parameterCount
        self.codec = codec
    }

    /// Parses the header of `bytes` and checks the structure and signature.
    ///
    /// - Parameter publicKey: the pinned key of an origin, or `nil` when it is not a known peer.
    /// - Returns: the envelope, its payload not yet decompressed (``DeltaDecoder`` does that).
    public func verify(
        _ bytes: [UInt8],
        publicKey: (PeerID) -> Ed25519.PublicKey?
    ) throws(DeltaError) -> DeltaEnvelope {
        try rethrowingDeltaError {
            try bytes.withUnsafeBytes { try verify($0, publicKey: publicKey) }
        }
    }

    public func verify(
        _ bytes: UnsafeRawBufferPointer,
        publicKey: (PeerID) -> Ed25519.PublicKey?
    ) throws(DeltaError) -> DeltaEnvelope {
        let verified = try verifyInPlace(bytes, publicKey: publicKey)
        let delta = EncodedDelta(
            codec: verified.codec, parameterCount: parameterCount, rawLength: verified.rawLength,
            payload: Array(verified.payload)
        )
        return DeltaEnvelope(header: verified.header, delta: delta)
    }

    /// Verifies `bytes` and decodes its payload into `values` (``parameterCount`` of them)
    /// without copying the payload.
    ///
    /// - Returns: the verified header. `values` is only written once the signature has verified;
    ///   when decoding then fails, its contents are unspecified.
    public func open(
        _ bytes: UnsafeRawBufferPointer,
        publicKey: (PeerID) -> Ed25519.PublicKey?,
        decoder: DeltaDecoder,
        into values: UnsafeMutableBufferPointer<Float>
    ) throws(DeltaError) -> DeltaEnvelope.Header {
        precondition(values.count == parameterCount, "output buffer must hold the plan's parameter count")
        let verified = try verifyInPlace(bytes, publicKey: publicKey)
        try decoder.decode(verified.payload, codec: verified.codec, rawLength: verified.rawLength, into: values)
        return verified.header
    }

    private struct Verified {
        var header: DeltaEnvelope.Header
        var codec: WireCodec
        var rawLength: Int
        var payload: UnsafeRawBufferPointer
    }

    private func verifyInPlace(
        _ bytes: UnsafeRawBufferPointer,
        publicKey: (PeerID) -> Ed25519.PublicKey?
    ) throws(DeltaError) -> Verified {
        var r = ByteReader(bytes)
        do {
            let magic = try r.readSlice(4, "magic")
            guard magic.elementsEqual(DeltaEnvelope.magic) else {
                throw DeltaError(.badMagic, "not a Plexus delta envelope (magic is not 'PLXD')")
            }
            let version = try r.readByte("format version")
            guard version == DeltaEnvelope.formatVersion else {
                throw DeltaError(.unsupportedVersion, "format version \(version); this node reads version \(DeltaEnvelope.formatVersion)")
            }
            let kindByte = try r.readByte("kind")
            guard let kind = DeltaEnvelope.Kind(rawValue: kindByte) else {
                throw DeltaError(.unknownKind, "kind \(kindByte); expected 0 (delta) or 1 (keyframe)")
            }
            let codecID = try r.readByte("codec")
            let codecByte = try r.readByte("codec byte")
            let codecWord = Int(try r.read(UInt32.self, "codec word"))
            let codec: WireCodec
            switch codecID {
            case 0, 1, 2:
                guard codecByte == 0, codecWord == 0 else {
                    throw DeltaError(.badCodecParameters, "codec \(codecID) takes no parameters")
                }
                codec = codecID == 0 ? .lossless : codecID == 1 ? .float16 : .bfloat16
            case 3:
                guard codecByte == 0 else { throw DeltaError(.badCodecParameters, "int8 takes no codec byte") }
                codec = .int8(chunk: codecWord)
            case 4:
                guard let values = CodecSpec.TopKValues(rawValue: codecByte) else {
                    throw DeltaError(.badCodecParameters, "top-k value format \(codecByte); expected 0 (f32), 1 (f16) or 2 (int8)")
                }
                codec = .topK(k: codecWord, values: values)
            default:
                throw DeltaError(.unknownCodec, "codec \(codecID); expected 0…4")
            }
            let hash = try r.readSlice(32, "plan hash")
            guard let origin = try r.readPeerID("origin id") else {
                throw DeltaError(.badOrigin, "the origin id is not a valid peer id")
            }
            let sequence = try r.read(UInt64.self, "sequence")
            let round = try r.read(UInt64.self, "round")
            let base = try r.read(UInt64.self, "base sequence")
            let count = Int(try r.read(UInt32.self, "parameter count"))
            let samples = try r.read(UInt64.self, "sample count")
            let neighbourhood = try r.read(UInt64.self, "neighbourhood sample count")
            let rawLength = Int(try r.read(UInt32.self, "raw length"))
            let payloadLength = Int(try r.read(UInt32.self, "payload length"))

            guard hash.elementsEqual(planHash) else {
                throw DeltaError(.planMismatch, "envelope from '\(origin)' is for plan \(hex(hash.prefix(8)))…, this node runs plan \(hex(planHash.prefix(8)))…")
            }
            guard count == parameterCount else {
                throw DeltaError(.wrongParameterCount, "envelope from '\(origin)' carries \(count) parameters, the plan has \(parameterCount)")
            }
            if let planCodec = self.codec {
                let expected = kind == .keyframe ? WireCodec.lossless : WireCodec(planCodec, count: count)
                guard codec == expected else {
                    throw DeltaError(.wrongCodec, "\(kind == .keyframe ? "keyframe" : "delta") from '\(origin)' uses codec \(codec); expected \(expected)")
                }
            }
            guard samples <= DeltaEnvelope.maximumSampleCount else {
                throw DeltaError(.outOfRange, "envelope from '\(origin)' declares \(samples) samples; the maximum is 2^40")
            }
            guard neighbourhood <= DeltaEnvelope.maximumNeighbourhoodSampleCount else {
                throw DeltaError(.outOfRange, "envelope from '\(origin)' declares a neighbourhood of \(neighbourhood) samples; the maximum is 2^52")
            }
            // S_j counts n_j itself: a smaller S_j (other than 0, "unused") would let a sender
            // claim a mixing weight above 1.
            guard neighbourhood == 0 || neighbourhood >= samples else {
                throw DeltaError(.outOfRange, "envelope from '\(origin)' declares a neighbourhood of \(neighbourhood) samples, fewer than its own \(samples)")
            }
            guard round <= DeltaEnvelope.maximumRound else {
                throw DeltaError(.outOfRange, "envelope from '\(origin)' is for round \(round); the maximum is 2^32")
            }
            guard sequence >= 1 else { throw DeltaError(.badSequence, "sequence 0 is never used") }
            switch kind {
            case .keyframe:
                guard base == 0 else { throw DeltaError(.badSequence, "a keyframe applies to no base, but names \(base)") }
            case .delta:
                guard base >= 1, base < sequence else {
                    throw DeltaError(.badSequence, "delta \(sequence) names base \(base); expected 1…\(sequence - 1)")
                }
            }
            try DeltaDecoder.validate(codec: codec, parameterCount: count, rawLength: rawLength)
            let payloadBound = ZstdCompressor.bound(rawLength)
            guard payloadLength <= payloadBound else {
                throw DeltaError(.badLength, "payload of \(payloadLength) bytes exceeds zstd's bound of \(payloadBound) for \(rawLength) raw bytes")
            }
            let expectedTotal = r.offset + payloadLength + DeltaEnvelope.signatureByteCount
            guard bytes.count <= expectedTotal else {
                throw DeltaError(.trailingBytes, "\(bytes.count - expectedTotal) bytes follow the signature")
            }
            let payload = try r.readSlice(payloadLength, "payload")
            let body = UnsafeRawBufferPointer(rebasing: bytes[0..<r.offset])
            let signature = try r.readSlice(DeltaEnvelope.signatureByteCount, "signature")

            guard let key = publicKey(origin) else {
                throw DeltaError(.unknownOrigin, "no public key is pinned for origin '\(origin)'")
            }
            let digest = DeltaEnvelope.signedDigest(body)
            guard digest.withUnsafeBytes({ key.isValidSignature(signature, for: $0) }) else {
                throw DeltaError(.badSignature, "signature does not verify with the key pinned for '\(origin)'")
            }
            let header = DeltaEnvelope.Header(
                kind: kind, planHash: Array(hash), origin: origin, sequence: sequence, round: round,
                baseSequence: base, sampleCount: samples,
                neighbourhoodSampleCount: neighbourhood
            )
            return Verified(header: header, codec: codec, rawLength: rawLength, payload: payload)
        } catch let error as ByteReader.Error {
            throw DeltaError(.truncated, error.description)
        } catch let error as DeltaError {
            throw error
        } catch {
            throw DeltaError(.badInput, "unexpected error: \(error)")
        }
    }
}

private func hex<C: Collection>(_ bytes: C) -> String where C.Element == UInt8 {
    let digits = Array("0123456789abcdef".utf8)
    var out: [UInt8] = []
    for b in bytes {
        out.append(digits[Int(b >> 4)])
        out.append(digits[Int(b & 15)])
    }
    return String(decoding: out, as: UTF8.self)
}
