import Foundation
import PlexusCodec
import PlexusCore
import PlexusCrypto
import Testing

/// The committed test vectors (`Fixtures/envelope-vectors.txt`) pin the wire format: another
/// implementation can check itself against them. Regenerate after a deliberate format change with
/// `PLEXUS_REGENERATE_VECTORS=1 swift test --filter TestVectorTests` and review the diff.
@Suite struct TestVectorTests {
    static let specs = ["lossless", "f16", "bf16", "int8:16", "topk:0.25", "topk:0.25+f16", "topk:0.25+int8"]

    /// 37 exactly representable values, a zero among them.
    static let values: [Float] = (0..<37).map { i in Float(i % 7 - 3) * 0.125 + Float(i) / 1024 }

    static let header = DeltaEnvelope.Header(
        kind: .delta,
        planHash: BLAKE2b.hash256(Array("plexus test vector plan".utf8)),
        origin: PeerID("hospital-a")!,
        sequence: 2,
        round: 3,
        baseSequence: 1,
        sampleCount: 341
    )

    struct Vector {
        var codec: String
        var raw: String
        var envelope: String
        var decoded: String
    }

    static func make() throws -> [Vector] {
        try specs.map { text in
            let spec = try CodecSpec(parsing: text)
            let encoder = DeltaEncoder(codec: spec, zstdLevel: 1)
            let raw = values.withUnsafeBufferPointer { encoder.rawLayout($0, reconstruct: nil) }
            let encoded = try encoder.encode(values)
            let envelope = DeltaEnvelope(header: header, delta: encoded).sealed(by: testKey)
            let decoded = try DeltaDecoder().decode(encoded)
            var w = ByteWriter()
            for v in decoded { w.write(float32: v) }
            return Vector(codec: text, raw: hexString(raw), envelope: hexString(envelope), decoded: hexString(w.bytes))
        }
    }

    static var fixtureURL: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/envelope-vectors.txt")
    }

    static func render(_ vectors: [Vector]) -> String {
        var lines = [
            "# Plexus delta envelope test vectors, format version 1. See README, \"Wire format\".",
            "# signing key seed (RFC 8032 test 1): 9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
            "# public key: \(testKey.publicKey.base64)",
            "# plan hash = BLAKE2b-256(\"plexus test vector plan\"): \(hexString(header.planHash))",
            "# header: kind delta, origin hospital-a, sequence 2, round 3, base 1, samples 341",
            "# values[i] = float32((i mod 7 - 3) * 0.125 + i / 1024), i = 0..<37",
            "# zstd \(zstdVersion()) level 1 (the envelope bytes are exact for this libzstd; any version decodes them)",
            "zstd \(zstdVersion())",
        ]
        for v in vectors {
            lines += ["", "codec \(v.codec)", "raw \(v.raw)", "envelope \(v.envelope)", "decoded \(v.decoded)"]
        }
        return lines.joined(separator: "\n") + "\n"
    }

    static func parse(_ text: String) -> (zstd: String, vectors: [Vector]) {
        var zstd = ""
        var vectors: [Vector] = []
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            let parts = line.split(separator: " ", maxSplits: 1).map(String.init)
            guard parts.count == 2 else { continue }
            switch parts[0] {
            case "zstd": zstd = parts[1]
            case "codec": vectors.append(Vector(codec: parts[1], raw: "", envelope: "", decoded: ""))
            case "raw": vectors[vectors.count - 1].raw = parts[1]
            case "envelope": vectors[vectors.count - 1].envelope = parts[1]
            case "decoded": vectors[vectors.count - 1].decoded = parts[1]
            default: break
            }
        }
        return (zstd, vectors)
    }

    @Test func encoderAndDecoderMatchTheCommittedVectors() throws {
        let fresh = try Self.make()
        if ProcessInfo.processInfo.environment["PLEXUS_REGENERATE_VECTORS"] == "1" {
            try Self.render(fresh).write(to: Self.fixtureURL, atomically: true, encoding: .utf8)
        }
        let text = try String(contentsOf: Self.fixtureURL, encoding: .utf8)
        let (zstd, committed) = Self.parse(text)
        #expect(committed.map(\.codec) == Self.specs)
        for (mine, theirs) in zip(fresh, committed) {
            // The codec layouts and the decoded values do not depend on zstd: always exact.
            #expect(mine.raw == theirs.raw, "raw layout of \(mine.codec)")
            #expect(mine.decoded == theirs.decoded, "decoded values of \(mine.codec)")
            if zstd == zstdVersion() {
                #expect(mine.envelope == theirs.envelope, "envelope bytes of \(mine.codec)")
            }
            // The committed envelope verifies and decodes to the committed values.
            let envelope = try EnvelopeVerifier(planHash: Self.header.planHash, parameterCount: 37)
                .verify(hex(theirs.envelope), publicKey: { $0 == Self.header.origin ? testKey.publicKey : nil })
            #expect(envelope.header == Self.header)
            var w = ByteWriter()
            for v in try DeltaDecoder().decode(envelope.delta) { w.write(float32: v) }
            #expect(hexString(w.bytes) == theirs.decoded, "decoding the committed \(theirs.codec) envelope")
        }
    }
}
