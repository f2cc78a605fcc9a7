import PlexusCodec
import PlexusCore
import PlexusCrypto
import Testing

@Suite struct EnvelopeTests {
    @Test(arguments: allSpecs)
    func sealThenOpenRoundTrips(spec: CodecSpec) throws {
        let values = sampleDelta(count: 5000, seed: 3)
        let encoded = try DeltaEncoder(codec: spec).encode(values)
        let header = sampleHeader(kind: .delta, sequence: 9, base: 8)
        let bytes = seal(encoded, header: header)
        let (envelope, decoded) = try open(bytes, count: values.count)
        #expect(envelope.header == header)
        #expect(envelope.delta == encoded)
        #expect(decoded == (try DeltaDecoder().decode(encoded)))
    }

    /// Every single-byte change anywhere in an envelope is caught by verification or decoding.
    @Test(arguments: [CodecSpec.lossless, .int8(chunk: 16), .topK(fraction: 0.25, values: .float16)])
    func everyFlippedByteIsRejected(spec: CodecSpec) throws {
        let encoded = try DeltaEncoder(codec: spec).encode(sampleDelta(count: 64, seed: 5))
        let bytes = seal(encoded)
        var accepted: [Int] = []
        for position in bytes.indices {
            for flip: UInt8 in [0x01, 0x80, 0xFF] {
                var tampered = bytes
                tampered[position] ^= flip
                if (try? open(tampered, count: 64)) != nil { accepted.append(position) }
            }
        }
        #expect(accepted.isEmpty, "tampered envelopes accepted at byte positions \(accepted)")
    }

    @Test func everyTruncationIsRejectedAsTruncated() throws {
        let bytes = seal(try DeltaEncoder(codec: .lossless).encode(sampleDelta(count: 100, seed: 6)))
        for length in 0..<bytes.count {
            let error = #expect(throws: DeltaError.self) { try open(Array(bytes.prefix(length)), count: 100) }
            #expect(error?.code == .truncated, "length \(length): \(String(describing: error))")
        }
    }

    @Test func trailingBytesAreRejected() throws {
        let bytes = seal(try DeltaEncoder(codec: .lossless).encode([1, 2, 3]))
        let error = #expect(throws: DeltaError.self) { try open(bytes + [0], count: 3) }
        #expect(error?.code == .trailingBytes)
    }

    @Test func wrongPlanWrongCountUnknownOriginAndWrongKey() throws {
        let bytes = seal(try DeltaEncoder(codec: .lossless).encode([1, 2, 3]))
        let otherPlan = EnvelopeVerifier(planHash: BLAKE2b.hash256([1]), parameterCount: 3)
        let planError = #expect(throws: DeltaError.self) { _ = try otherPlan.verify(bytes, publicKey: keyOf) }
        #expect(planError?.code == .planMismatch)
        let verifier = EnvelopeVerifier(planHash: testPlanHash, parameterCount: 3)
        let countError = #expect(throws: DeltaError.self) {
            _ = try EnvelopeVerifier(planHash: testPlanHash, parameterCount: 4).verify(bytes, publicKey: keyOf)
        }
        #expect(countError?.code == .wrongParameterCount)
        let unknown = #expect(throws: DeltaError.self) { _ = try verifier.verify(bytes, publicKey: { _ in nil }) }
        #expect(unknown?.code == .unknownOrigin)
        let impostor = Ed25519.PrivateKey().publicKey
        let forged = #expect(throws: DeltaError.self) { _ = try verifier.verify(bytes, publicKey: { _ in impostor }) }
        #expect(forged?.code == .badSignature)
        #expect(forged.map { !$0.description.contains(impostor.base64) } == true)
    }

    @Test func sequenceRulesAreChecked() throws {
        let encoded = try DeltaEncoder(codec: .lossless).encode([1, 2, 3])
        for header in [
            sampleHeader(kind: .keyframe, sequence: 0, base: 0),
            sampleHeader(kind: .keyframe, sequence: 5, base: 4),
            sampleHeader(kind: .delta, sequence: 5, base: 0),
            sampleHeader(kind: .delta, sequence: 5, base: 5),
        ] {
            let error = #expect(throws: DeltaError.self) { try open(seal(encoded, header: header), count: 3) }
            #expect(error?.code == .badSequence)
        }
    }

    @Test func replayWindowAdmitsOnlyNewSequences() throws {
        var window = ReplayWindow()
        let a = PeerID("a")!
        let b = PeerID("b")!
        try window.admit(origin: a, sequence: 1)
        try window.admit(origin: a, sequence: 5)
        try window.admit(origin: b, sequence: 1)
        for old: UInt64 in [1, 4, 5] {
            let error = #expect(throws: DeltaError.self) { try window.admit(origin: a, sequence: old) }
            #expect(error?.code == .replay)
        }
        try window.check(origin: a, sequence: 6)
        try window.check(origin: a, sequence: 6)  // check alone records nothing
        #expect(window.lastAccepted == [a: 5, b: 1])
    }
}
