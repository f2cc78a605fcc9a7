import PlexusCodec
import PlexusCore
import PlexusCrypto

/// A wire codec chosen by the fuzzer, parameters included (valid or not).
func fuzzWireCodec(_ input: inout FuzzInput) -> WireCodec {
    switch input.byte() % 5 {
    case 0: return .lossless
    case 1: return .float16
    case 2: return .bfloat16
    case 3: return .int8(chunk: Int(input.u32()) % 70_000)
    default:
        let values = CodecSpec.TopKValues(rawValue: input.byte() % 3)!
        return .topK(k: Int(input.u32()) % 70_000, values: values)
    }
}

/// Decodes a payload with an oracle: every value decoded is finite, or the decoder throws.
enum DeltaFuzz {
    nonisolated(unsafe) static let decoder = DeltaDecoder()

    /// byte 0: codec and mode; then codec parameters, parameter count, and the payload. In
    /// "compressed" mode the fuzzer's bytes are the raw (pre-zstd) layout, compressed here, so
    /// the fuzzer reaches the codecs' layout parsing behind zstd.
    static func run(_ bytes: [UInt8]) {
        var input = FuzzInput(bytes)
        let mode = input.byte()
        let codec = fuzzWireCodec(&input)
        let count = Int(input.u16()) % 2049
        let payload: [UInt8]
        let rawLength: Int
        if mode & 1 == 0 {
            let raw = input.rest()
            payload = ZstdOneShot.compress(raw)
            rawLength = mode & 2 == 0 ? raw.count : Int(input.u32() % (1 << 20))
        } else {
            rawLength = Int(input.u32()) % (1 << 20)
            payload = input.rest()
        }
        var values = [Float](repeating: .nan, count: count)
        let decoded: Bool = payload.withUnsafeBytes { p in
            values.withUnsafeMutableBufferPointer { v in
                do {
                    try decoder.decode(p, codec: codec, rawLength: rawLength, into: v)
                    return true
                } catch {
                    return false
                }
            }
        }
        if decoded {
            fuzzCheck(allFinite(values), "decoded a non-finite value with \(codec)")
        }
    }
}

/// The signed envelope: raw bytes against the verifier, and envelopes built from fuzzer-chosen
/// header fields and payload, signed here with the origin's real key.
enum EnvelopeFuzz {
    static let originKey = FuzzKeys.key(1)
    static let origin = PeerID("p001")!
    nonisolated(unsafe) static let decoder = DeltaDecoder()

    static func publicKey(_ peer: PeerID) -> Ed25519.PublicKey? { peer == origin ? originKey.publicKey : nil }

    static func run(_ bytes: [UInt8]) {
        var input = FuzzInput(bytes)
        let mode = input.byte()
        let parameterCount = Int(input.u16() % 1025)
        let pinned: CodecSpec? = switch input.byte() % 4 {
        case 0: nil
        case 1: .lossless
        case 2: .int8(chunk: 64)
        default: .topK(fraction: 0.25, values: .float16)
        }
        let verifier = EnvelopeVerifier(planHash: FuzzKeys.planHash, parameterCount: parameterCount, codec: pinned)
        let envelope: [UInt8]
        var sealed: DeltaEnvelope?
        if mode & 1 == 0 {
            envelope = input.rest()
        } else {
            let kind: DeltaEnvelope.Kind = input.bool() ? .keyframe : .delta
            let codec = fuzzWireCodec(&input)
            let plan = input.byte() < 240 ? FuzzKeys.planHash : BLAKE2b.hash256(input.take(4))
            let claimedCount = input.byte() < 240 ? parameterCount : Int(input.u32())
            let header = DeltaEnvelope.Header(
                kind: kind, planHash: plan, origin: input.byte() < 240 ? origin : PeerID("p002")!,
                sequence: input.interesting64(), round: input.interesting64(), baseSequence: input.interesting64(),
                sampleCount: input.interesting64(), neighbourhoodSampleCount: input.interesting64()
            )
            let rawLength = Int(input.u32() % (1 << 21))
            let payload = input.bool() ? ZstdOneShot.compress(input.rest()) : input.rest()
            let delta = EncodedDelta(codec: codec, parameterCount: claimedCount & 0xFFFF_FFFF, rawLength: rawLength, payload: payload)
            sealed = DeltaEnvelope(header: header, delta: delta)
            envelope = sealed!.sealed(by: originKey)
        }
        // verify: either an error, or exactly the fields that were signed.
        if let verified = try? verifier.verify(envelope, publicKey: publicKey) {
            if let sealed {
                fuzzCheck(verified.header == sealed.header, "verified header differs from the signed one")
                fuzzCheck(verified.delta == sealed.delta, "verified delta differs from the signed one")
            }
            fuzzCheck(verified.delta.parameterCount == parameterCount, "verified a delta of the wrong parameter count")
            // Re-sealing what verified gives the same bytes (the format has one encoding).
            fuzzCheck(verified.sealed(by: originKey) == envelope, "re-sealed envelope differs")
        }
        // open: verify and decode in one pass; decoded values are finite.
        var values = [Float](repeating: .nan, count: parameterCount)
        let opened: DeltaEnvelope.Header? = envelope.withUnsafeBytes { e in
            values.withUnsafeMutableBufferPointer { v in
                try? verifier.open(e, publicKey: publicKey, decoder: decoder, into: v)
            }
        }
        if opened != nil {
            fuzzCheck(allFinite(values), "open decoded a non-finite value")
            if let sealed { fuzzCheck(opened == sealed.header, "opened header differs from the signed one") }
        }
    }
}
