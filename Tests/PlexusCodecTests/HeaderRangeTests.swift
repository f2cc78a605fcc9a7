import PlexusCodec
import PlexusCore
import PlexusCrypto
import Testing

/// Validly signed headers whose numbers or codec are outside what the format allows.
@Suite struct HeaderRangeTests {
    static func header(samples: UInt64 = 341, neighbourhood: UInt64 = 0, round: UInt64 = 7, kind: DeltaEnvelope.Kind = .keyframe) -> DeltaEnvelope.Header {
        DeltaEnvelope.Header(
            kind: kind, planHash: testPlanHash, origin: testOrigin, sequence: 2, round: round,
            baseSequence: kind == .delta ? 1 : 0, sampleCount: samples, neighbourhoodSampleCount: neighbourhood
        )
    }

    static func code(_ bytes: [UInt8], codec: CodecSpec? = nil) -> Reason? {
        do {
            _ = try EnvelopeVerifier(planHash: testPlanHash, parameterCount: 4, codec: codec).verify(bytes, publicKey: keyOf)
            return nil
        } catch {
            return error.code
        }
    }

    @Test func countsAndRoundsBeyondTheirMaximumAreOutOfRange() throws {
        let delta = try DeltaEncoder(codec: .lossless).encode([1, 2, 3, 4])
        let maxSamples = DeltaEnvelope.maximumSampleCount
        let maxHood = DeltaEnvelope.maximumNeighbourhoodSampleCount
        let maxRound = DeltaEnvelope.maximumRound
        #expect(maxSamples == 1 << 40 && maxHood == 1 << 52 && maxRound == 1 << 32)
        #expect(Self.code(seal(delta, header: Self.header(samples: maxSamples, neighbourhood: maxHood, round: maxRound))) == nil)
        #expect(Self.code(seal(delta, header: Self.header(samples: maxSamples + 1))) == .outOfRange)
        #expect(Self.code(seal(delta, header: Self.header(samples: 1 << 63))) == .outOfRange)
        #expect(Self.code(seal(delta, header: Self.header(neighbourhood: maxHood + 1))) == .outOfRange)
        #expect(Self.code(seal(delta, header: Self.header(neighbourhood: .max))) == .outOfRange)
        #expect(Self.code(seal(delta, header: Self.header(round: maxRound + 1))) == .outOfRange)
        // S_j includes n_j: a neighbourhood smaller than the site itself (but 0, unused) is a lie.
        #expect(Self.code(seal(delta, header: Self.header(samples: 341, neighbourhood: 340))) == .outOfRange)
        #expect(Self.code(seal(delta, header: Self.header(samples: 341, neighbourhood: 341))) == nil)
        // Checked before the signature: an unsigned (garbage-signature) envelope gets the same code.
        var forged = seal(delta, header: Self.header(samples: 1 << 63))
        forged[forged.count - 1] ^= 1
        #expect(Self.code(forged) == .outOfRange)
    }

    @Test func aVerifierThatKnowsThePlanAcceptsOnlyItsCodecAndLosslessKeyframes() throws {
        let plan = CodecSpec.int8(chunk: 4)
        let int8 = try DeltaEncoder(codec: plan).encode([1, 2, 3, 4])
        let lossless = try DeltaEncoder(codec: .lossless).encode([1, 2, 3, 4])
        let f16 = try DeltaEncoder(codec: .float16).encode([1, 2, 3, 4])
        let otherChunk = try DeltaEncoder(codec: .int8(chunk: 8)).encode([1, 2, 3, 4])
        #expect(Self.code(seal(int8, header: Self.header(kind: .delta)), codec: plan) == nil)
        #expect(Self.code(seal(lossless, header: Self.header(kind: .keyframe)), codec: plan) == nil)
        #expect(Self.code(seal(lossless, header: Self.header(kind: .delta)), codec: plan) == .wrongCodec)
        #expect(Self.code(seal(f16, header: Self.header(kind: .delta)), codec: plan) == .wrongCodec)
        #expect(Self.code(seal(otherChunk, header: Self.header(kind: .delta)), codec: plan) == .wrongCodec)
        #expect(Self.code(seal(int8, header: Self.header(kind: .keyframe)), codec: plan) == .wrongCodec)
        #expect(Self.code(seal(int8, header: Self.header(kind: .keyframe))) == nil, "without a plan codec, any codec")
    }

    /// A finite scale whose product with q = 127 overflows: +∞ after decoding, so nonFinite.
    @Test func int8ScalesThatOverflowOnDecodeAreNonFinite() throws {
        var raw = ByteWriter(capacity: 8)
        raw.write(littleEndian: Float(3e38).bitPattern)
        for _ in 0..<4 { raw.write(127) }
        let int8 = EncodedDelta(codec: .int8(chunk: 4), parameterCount: 4, rawLength: 8, payload: ZstdOneShot.compress(raw.bytes))
        #expect(throws: DeltaError.self) { _ = try DeltaDecoder().decode(int8) }
        do { _ = try DeltaDecoder().decode(int8) } catch {
            #expect(error.code == .nonFinite)
            #expect(error.message.contains("chunk 0"))
        }
        // top-k int8: one index (0), one scale, one value.
        var topk = ByteWriter(capacity: 6)
        topk.write(varint: 0)
        topk.write(littleEndian: Float(3e38).bitPattern)
        topk.write(127)
        let topKDelta = EncodedDelta(codec: .topK(k: 1, values: .int8), parameterCount: 4, rawLength: topk.bytes.count, payload: ZstdOneShot.compress(topk.bytes))
        #expect(throws: DeltaError.self) { _ = try DeltaDecoder().decode(topKDelta) }
        do { _ = try DeltaDecoder().decode(topKDelta) } catch { #expect(error.code == .nonFinite) }
        // The largest scale that stays finite still decodes.
        var fine = ByteWriter(capacity: 8)
        fine.write(littleEndian: (Float.greatestFiniteMagnitude / 128).bitPattern)
        for _ in 0..<4 { fine.write(127) }
        let ok = EncodedDelta(codec: .int8(chunk: 4), parameterCount: 4, rawLength: 8, payload: ZstdOneShot.compress(fine.bytes))
        #expect(try DeltaDecoder().decode(ok).allSatisfy { $0.isFinite })
    }

    /// DeltaError's codes are PlexusCore's one enum of reasons.
    @Test func deltaErrorCodesArePlexusCoreReasons() {
        let error = DeltaError(.replay, "x")
        #expect(error.code == Reason.replay)
        #expect(error.description == "replay: x")
    }
}
