import PlexusCodec
import PlexusCore
import PlexusCrypto
import Testing

/// Validly signed envelopes whose contents are hostile: the signature does not make a payload safe.
@Suite struct HostileInputTests {
    static func forged(_ codec: WireCodec, count: Int, raw: [UInt8], frame: [UInt8]? = nil) -> [UInt8] {
        let payload = frame ?? ZstdOneShot.compress(raw)
        return seal(EncodedDelta(codec: codec, parameterCount: count, rawLength: raw.count, payload: payload))
    }

    static func rejection(_ bytes: [UInt8], count: Int) -> DeltaError? {
        do {
            _ = try open(bytes, count: count)
            return nil
        } catch {
            return error
        }
    }

    @Test func smallFrameDeclaringAHugeContentSize() {
        // 1 MiB of zeros compresses to a few dozen bytes, within the payload bound for 400 raw
        // bytes: the frame's declared content size is checked before anything is inflated.
        let bomb = ZstdOneShot.compress([UInt8](repeating: 0, count: 1 << 20))
        #expect(bomb.count < 200)
        let bytes = Self.forged(.lossless, count: 100, raw: [UInt8](repeating: 0, count: 400), frame: bomb)
        let error = Self.rejection(bytes, count: 100)
        #expect(error?.code == .decompression)
        #expect(error?.message.contains("declares 1048576 bytes") == true)
        // 64 MiB of zeros is a few KiB: more than zstd's bound for 400 bytes, refused on length alone.
        let bigBomb = ZstdOneShot.compress([UInt8](repeating: 0, count: 64 << 20))
        let big = Self.forged(.lossless, count: 100, raw: [UInt8](repeating: 0, count: 400), frame: bigBomb)
        #expect(Self.rejection(big, count: 100)?.code == .badLength)
    }

    @Test func frameShorterThanDeclared() {
        let frame = ZstdOneShot.compress([UInt8](repeating: 1, count: 396))
        let bytes = Self.forged(.lossless, count: 100, raw: [UInt8](repeating: 0, count: 400), frame: frame)
        #expect(Self.rejection(bytes, count: 100)?.code == .decompression)
    }

    @Test func garbageAndConcatenatedFrames() {
        let raw = [UInt8](repeating: 0, count: 400)
        let garbage = Self.forged(.lossless, count: 100, raw: raw, frame: [UInt8](repeating: 0xAB, count: 50))
        #expect(Self.rejection(garbage, count: 100)?.code == .decompression)
        let one = ZstdOneShot.compress(raw)
        let two = Self.forged(.lossless, count: 100, raw: raw, frame: one + one)
        #expect(Self.rejection(two, count: 100)?.code == .trailingBytes)
    }

    @Test func declaredCountsBeyondWhatTheHeaderAllows() {
        // A raw length that does not fit the codec and count is refused before any allocation.
        let wrongRaw = seal(EncodedDelta(codec: .lossless, parameterCount: 100, rawLength: 1 << 31, payload: [1]))
        #expect(Self.rejection(wrongRaw, count: 100)?.code == .badLength)
        let hugeK = seal(EncodedDelta(codec: .topK(k: 4_000_000_000, values: .float32), parameterCount: 100, rawLength: 8, payload: [1]))
        #expect(Self.rejection(hugeK, count: 100)?.code == .badCodecParameters)
        let zeroChunk = seal(EncodedDelta(codec: .int8(chunk: 0), parameterCount: 100, rawLength: 100, payload: [1]))
        #expect(Self.rejection(zeroChunk, count: 100)?.code == .badCodecParameters)
        let hugePayload = seal(EncodedDelta(codec: .lossless, parameterCount: 100, rawLength: 400, payload: [UInt8](repeating: 0, count: 10_000)))
        #expect(Self.rejection(hugePayload, count: 100)?.code == .badLength)
    }

    @Test func nonFiniteValuesInEveryCodec() {
        var nanRaw = [UInt8](repeating: 0, count: 16)
        // value 2 of 4 = NaN (0x7FC00000), written in shuffled planes: byte b of value 2 at b*4 + 2.
        nanRaw[2 * 4 + 2] = 0xC0
        nanRaw[3 * 4 + 2] = 0x7F
        #expect(Self.rejection(Self.forged(.lossless, count: 4, raw: nanRaw), count: 4)?.code == .nonFinite)
        // f16 infinity 0x7C00 as value 0 of 2: planes [lo0 lo1 hi0 hi1].
        #expect(Self.rejection(Self.forged(.float16, count: 2, raw: [0, 0, 0x7C, 0]), count: 2)?.code == .nonFinite)
        #expect(Self.rejection(Self.forged(.bfloat16, count: 2, raw: [0x80, 0, 0x7F, 0]), count: 2)?.code == .nonFinite)
        var int8Raw = ByteWriter()
        int8Raw.write(float32: .infinity)
        int8Raw.write(contentsOf: [1, 2] as [UInt8])
        #expect(Self.rejection(Self.forged(.int8(chunk: 4), count: 2, raw: int8Raw.bytes), count: 2)?.code == .nonFinite)
        var topk = ByteWriter()
        topk.write(varint: 1)
        topk.write(float32: .nan)
        #expect(Self.rejection(Self.forged(.topK(k: 1, values: .float32), count: 3, raw: topk.bytes), count: 3)?.code == .nonFinite)
    }

    @Test func unsortedRepeatedAndOutOfRangeIndices() {
        func topk(_ gaps: [UInt64], count: Int) -> DeltaError? {
            var w = ByteWriter()
            for g in gaps { w.write(varint: g) }
            for _ in gaps { w.write(float32: 1) }
            return Self.rejection(Self.forged(.topK(k: gaps.count, values: .float32), count: count, raw: w.bytes), count: count)
        }
        #expect(topk([3, 0], count: 10)?.code == .badIndices)  // repeated index 3
        #expect(topk([10], count: 10)?.code == .badIndices)  // first index out of range
        #expect(topk([5, 5], count: 10)?.code == .badIndices)  // 5 then 10: out of range
        #expect(topk([UInt64.max], count: 10)?.code == .badIndices)
        #expect(topk([2, 3], count: 10) == nil)  // indices 2 and 5: fine
        // A varint running past 64 bits.
        let longVarint = [UInt8](repeating: 0xFF, count: 11) + [0x01, 0, 0]
        #expect(Self.rejection(Self.forged(.topK(k: 1, values: .float32), count: 10, raw: longVarint), count: 10)?.code == .badIndices)
    }

    @Test func int8RejectsMinusOneTwentyEight() {
        var raw = ByteWriter()
        raw.write(float32: 0.5)
        raw.write(contentsOf: [0x80, 0x01] as [UInt8])
        #expect(Self.rejection(Self.forged(.int8(chunk: 2), count: 2, raw: raw.bytes), count: 2)?.code == .badCodecParameters)
    }

    /// Thousands of seeded random and mutated inputs: every one is rejected or decodes to the
    /// declared size, and none crashes.
    @Test func seededFuzzNeverCrashes() throws {
        var rng = SplitMix64(seed: 2026)
        let seeds: [[UInt8]] = try allSpecs.map { spec in
            seal(try DeltaEncoder(codec: spec).encode(sampleDelta(count: 300, seed: 9)))
        }
        var accepted = 0
        var unchanged = 0
        var rejectedByCode: [String: Int] = [:]
        for iteration in 0..<6000 {
            var bytes: [UInt8]
            if iteration % 6 == 0 {
                bytes = (0..<Int.random(in: 0..<600, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
                if iteration % 12 == 0 && bytes.count >= 4 { bytes.replaceSubrange(0..<4, with: DeltaEnvelope.magic) }
            } else {
                bytes = seeds[Int.random(in: 0..<seeds.count, using: &rng)]
                for _ in 0..<Int.random(in: 1...4, using: &rng) {
                    switch Int.random(in: 0..<4, using: &rng) {
                    case 0: bytes[Int.random(in: 0..<bytes.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
                    case 1: bytes.removeLast(min(bytes.count - 1, Int.random(in: 1...40, using: &rng)))
                    case 2: bytes.insert(UInt8.random(in: 0...255, using: &rng), at: Int.random(in: 0...bytes.count, using: &rng))
                    default: bytes.remove(at: Int.random(in: 0..<bytes.count, using: &rng))
                    }
                }
            }
            if seeds.contains(bytes) {
                unchanged += 1  // the mutations cancelled out (a byte set to its own value, …)
                continue
            }
            do {
                let (_, values) = try open(bytes, count: 300)
                #expect(values.count == 300)
                accepted += 1
            } catch {
                rejectedByCode[error.code.description, default: 0] += 1
            }
        }
        #expect(accepted == 0, "a mutated envelope verified: the signature should cover every byte")
        #expect(rejectedByCode.values.reduce(0, +) == 6000 - unchanged)
        #expect(unchanged < 60)
        // Many mutations get past the header checks to the signature, which then catches them.
        #expect(rejectedByCode["badSignature", default: 0] > 300)
    }

    /// The decoder alone (no signature in the way) on random payloads for every codec.
    @Test func seededDecoderFuzz() {
        var rng = SplitMix64(seed: 7)
        let codecs: [WireCodec] = [.lossless, .float16, .bfloat16, .int8(chunk: 7), .topK(k: 5, values: .float32), .topK(k: 5, values: .float16), .topK(k: 5, values: .int8)]
        var outcomes = 0
        for _ in 0..<3000 {
            let codec = codecs[Int.random(in: 0..<codecs.count, using: &rng)]
            let rawLength = Int.random(in: 0...90, using: &rng)
            let raw = (0..<rawLength).map { _ in UInt8.random(in: 0...255, using: &rng) }
            let delta = EncodedDelta(codec: codec, parameterCount: 20, rawLength: rawLength, payload: ZstdOneShot.compress(raw))
            if let values = try? DeltaDecoder().decode(delta) {
                #expect(values.count == 20 && values.allSatisfy(\.isFinite))
            }
            outcomes += 1
        }
        #expect(outcomes == 3000)
    }
}
