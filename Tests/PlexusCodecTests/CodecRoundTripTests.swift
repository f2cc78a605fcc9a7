import PlexusCodec
import PlexusCore
import Testing

@Suite struct CodecRoundTripTests {
    static let sizes = [0, 1, 4095, 4096, 4097, 1_000_000]

    @Test(arguments: sizes)
    func losslessIsBitExact(count: Int) throws {
        var values = sampleDelta(count: count, seed: UInt64(count))
        if count > 3 {
            values[0] = -0.0
            values[1] = .leastNonzeroMagnitude
            values[2] = .greatestFiniteMagnitude
        }
        let encoded = try DeltaEncoder(codec: .lossless).encode(values)
        let decoded = try DeltaDecoder().decode(encoded)
        #expect(decoded.map(\.bitPattern) == values.map(\.bitPattern))
    }

    @Test(arguments: sizes)
    func float16WithinHalfAnUlp(count: Int) throws {
        let values = sampleDelta(count: count, seed: 11)
        let encoded = try DeltaEncoder(codec: .float16).encode(values)
        let decoded = try DeltaDecoder().decode(encoded)
        #expect(decoded.count == count)
        // Relative error ≤ 2^-11 for normal halves; below 2^-14 the absolute error is ≤ 2^-25.
        let worst = values.indices.first { i in abs(values[i] - decoded[i]) > max(abs(values[i]) * 0x1p-11, 0x1p-25) }
        #expect(worst == nil, "f16 value \(worst ?? -1) outside the bound")
    }

    @Test(arguments: sizes)
    func bfloat16WithinHalfAnUlp(count: Int) throws {
        let values = sampleDelta(count: count, seed: 12)
        let encoded = try DeltaEncoder(codec: .bfloat16).encode(values)
        let decoded = try DeltaDecoder().decode(encoded)
        #expect(decoded.count == count)
        let worst = values.indices.first { i in abs(values[i] - decoded[i]) > abs(values[i]) * 0x1p-8 }
        #expect(worst == nil, "bf16 value \(worst ?? -1) outside the bound")
    }

    /// The f16 codec's bit arithmetic agrees with the standard library's `Float16` conversion
    /// (round to nearest even), across normal, subnormal and zero magnitudes.
    @Test func float16MatchesTheStandardConversion() throws {
        var rng = SplitMix64(seed: 99)
        var values: [Float] = (0..<200_000).map { _ in
            let exponent = Float.random(in: -30...16, using: &rng)
            return (Bool.random(using: &rng) ? 1 : -1) * Float.random(in: 1...2, using: &rng) * Float(pow2: exponent)
        }
        values += [0, -0.0, 0x1p-24, 0x1p-25, 0x1.8p-25, 0x1p-14, 0x1.ffcp-15, 65504, -65504, 65519.99, 1, 2049, 2051]
        let decoded = try DeltaDecoder().decode(DeltaEncoder(codec: .float16).encode(values))
        let mismatches = values.indices.filter { i in
            decoded[i].bitPattern != Float(Float16(min(max(values[i], -65504), 65504))).bitPattern
        }
        #expect(mismatches.isEmpty, "first mismatches: \(mismatches.prefix(5).map { (values[$0], decoded[$0]) })")
    }

    @Test func halfPrecisionClampsInsteadOfOverflowing() throws {
        let values: [Float] = [1e6, -1e6, 3e38, 65504, 65520]
        let f16 = try DeltaDecoder().decode(DeltaEncoder(codec: .float16).encode(values))
        #expect(f16 == [65504, -65504, 65504, 65504, 65504])
        let bf16 = try DeltaDecoder().decode(DeltaEncoder(codec: .bfloat16).encode([Float.greatestFiniteMagnitude]))
        #expect(bf16[0].isFinite && bf16[0] > 3e38)
    }

    @Test(arguments: sizes)
    func int8WithinOneStepOfItsChunkScale(count: Int) throws {
        let values = sampleDelta(count: count, seed: 13)
        let chunk = 4096
        let decoded = try DeltaDecoder().decode(DeltaEncoder(codec: .int8(chunk: chunk)).encode(values))
        #expect(decoded.count == count)
        var violations = 0
        for start in stride(from: 0, to: count, by: chunk) {
            let slice = start..<min(count, start + chunk)
            let absmax = values[slice].map(abs).max() ?? 0
            violations += slice.filter { abs(values[$0] - decoded[$0]) > absmax / 127 }.count
        }
        #expect(violations == 0)
    }

    @Test(arguments: sizes, [CodecSpec.TopKValues.float32, .float16, .int8])
    func topKKeepsExactlyTheLargestMagnitudes(count: Int, values format: CodecSpec.TopKValues) throws {
        let values = sampleDelta(count: count, seed: 14)
        let spec = CodecSpec.topK(fraction: 0.01, values: format)
        let k = CodecSpec.topKCount(fraction: 0.01, of: count)
        var reconstructed = [Float](repeating: .nan, count: count)
        let encoded = try reconstructed.withUnsafeMutableBufferPointer { r in
            try values.withUnsafeBufferPointer { try DeltaEncoder(codec: spec).encode($0, reconstruct: r) }
        }
        let decoded = try DeltaDecoder().decode(encoded)
        #expect(decoded.map(\.bitPattern) == reconstructed.map(\.bitPattern), "reconstruct must equal the decoder's output")
        let kept = Set(decoded.indices.filter { decoded[$0] != 0 })
        // The k-th largest magnitude, by a plain sort: everything above it is kept, nothing below.
        let threshold = k == 0 ? Float.infinity : values.map(abs).sorted(by: >)[k - 1]
        let above = values.indices.filter { abs(values[$0]) > threshold }
        let atThreshold = values.indices.filter { abs(values[$0]) == threshold }
        let expected = Set(above + atThreshold.prefix(k - above.count))
        #expect(kept == expected)
        let absmax = kept.map { abs(values[$0]) }.max() ?? 0
        let outOfBound = kept.filter { i in
            switch format {
            case .float32: decoded[i] != values[i]
            case .float16: abs(decoded[i] - values[i]) > abs(values[i]) * 0x1p-11
            case .int8: abs(decoded[i] - values[i]) > absmax / 127
            }
        }
        #expect(outOfBound.isEmpty)
    }

    @Test func topKBreaksTiesTowardLowIndices() throws {
        let values: [Float] = [1, -3, 2, 3, -3, 0.5]
        let decoded = try DeltaDecoder().decode(DeltaEncoder(codec: .topK(fraction: 0.5, values: .float32)).encode(values))
        #expect(decoded == [0, -3, 0, 3, -3, 0])
        let two = try DeltaDecoder().decode(DeltaEncoder(codec: .topK(fraction: 0.3, values: .float32)).encode(values))
        #expect(two == [0, -3, 0, 3, 0, 0])
    }

    @Test(arguments: allSpecs)
    func sealInOnePassEqualsEncodeThenSeal(spec: CodecSpec) throws {
        let values = sampleDelta(count: 3000, seed: 21)
        let header = sampleHeader(kind: .delta, sequence: 4, base: 3)
        var viaSeal = [Float](repeating: 0, count: values.count)
        var viaEncode = [Float](repeating: 0, count: values.count)
        let sealed = try viaSeal.withUnsafeMutableBufferPointer { r in
            try values.withUnsafeBufferPointer { try DeltaEncoder(codec: spec).seal($0, header: header, key: testKey, reconstruct: r) }
        }
        let encoded = try viaEncode.withUnsafeMutableBufferPointer { r in
            try values.withUnsafeBufferPointer { try DeltaEncoder(codec: spec).encode($0, reconstruct: r) }
        }
        #expect(sealed == DeltaEnvelope(header: header, delta: encoded).sealed(by: testKey))
        #expect(viaSeal == viaEncode)
        var opened = [Float](repeating: .nan, count: values.count)
        let verifier = EnvelopeVerifier(planHash: testPlanHash, parameterCount: values.count)
        let openedHeader = try sealed.withUnsafeBytes { bytes in
            try opened.withUnsafeMutableBufferPointer { out in
                try verifier.open(bytes, publicKey: keyOf, decoder: DeltaDecoder(), into: out)
            }
        }
        #expect(openedHeader == header)
        #expect(opened == viaSeal, "what the receiver decodes is what the sender reconstructed")
    }

    @Test func encoderRefusesNonFiniteValues() {
        for bad in [Float.nan, .infinity, -.infinity] {
            #expect(throws: DeltaError.self) { try DeltaEncoder(codec: .lossless).encode([0, bad, 1]) }
        }
    }

    @Test func codecSpecGrammar() throws {
        #expect(try CodecSpec(parsing: "topk:0.01+f16") == .topK(fraction: 0.01, values: .float16))
        #expect(try CodecSpec(parsing: "int8:1024") == .int8(chunk: 1024))
        #expect(try CodecSpec(parsing: "int8") == .int8(chunk: 4096))
        for text in ["lossless", "f16", "bf16", "int8", "int8:1024", "topk:0.01", "topk:0.5+int8"] {
            #expect(try CodecSpec(parsing: text).description == text)
        }
        for bad in ["", "zip", "topk:0", "topk:1.5", "topk:nan", "topk:0.1+f8", "int8:0", "int8:x", "LOSSLESS"] {
            #expect(throws: CodecSpec.ParseError.self, "\(bad)") { try CodecSpec(parsing: bad) }
        }
    }
}
