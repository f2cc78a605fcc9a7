import PlexusCodec
import PlexusCore
import PlexusCrypto

/// Gaussian-ish deltas (sum of uniforms), the shape model updates have.
func sampleDelta(count: Int, seed: UInt64, scale: Float = 0.01) -> [Float] {
    var rng = SplitMix64(seed: seed)
    return (0..<count).map { _ in
        var s: Float = 0
        for _ in 0..<4 { s += Float.random(in: -1...1, using: &rng) }
        return s * scale
    }
}

let allSpecs: [CodecSpec] = [
    .lossless, .float16, .bfloat16, .int8(chunk: 4096),
    .topK(fraction: 0.01, values: .float32), .topK(fraction: 0.1, values: .float16), .topK(fraction: 0.05, values: .int8),
]

/// A fixed identity for envelopes in tests: RFC 8032's first seed.
let testKey: Ed25519.PrivateKey = {
    let seed = hex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
    return try! Ed25519.PrivateKey(rawRepresentation: seed.withUnsafeBytes { SecureBytes(copying: $0) })
}()

let testPlanHash = BLAKE2b.hash256(Array("test plan".utf8))
let testOrigin = PeerID("hospital-a")!

func sampleHeader(kind: DeltaEnvelope.Kind = .keyframe, sequence: UInt64 = 1, base: UInt64 = 0) -> DeltaEnvelope.Header {
    DeltaEnvelope.Header(
        kind: kind, planHash: testPlanHash, origin: testOrigin, sequence: sequence, round: 7,
        baseSequence: base, sampleCount: 341
    )
}

func seal(_ delta: EncodedDelta, header: DeltaEnvelope.Header = sampleHeader()) -> [UInt8] {
    DeltaEnvelope(header: header, delta: delta).sealed(by: testKey)
}

func keyOf(_ peer: PeerID) -> Ed25519.PublicKey? { peer == testOrigin ? testKey.publicKey : nil }

/// Verify and decode, as a receiver does.
func open(_ bytes: [UInt8], count: Int) throws(DeltaError) -> (DeltaEnvelope, [Float]) {
    let envelope = try EnvelopeVerifier(planHash: testPlanHash, parameterCount: count).verify(bytes, publicKey: keyOf)
    let values = try DeltaDecoder().decode(envelope.delta)
    return (envelope, values)
}

func hex(_ text: String) -> [UInt8] {
    var bytes: [UInt8] = []
    var iterator = text.utf8.makeIterator()
    while let high = iterator.next(), let low = iterator.next() {
        bytes.append(UInt8(String(decoding: [high, low], as: UTF8.self), radix: 16)!)
    }
    return bytes
}

func hexString(_ bytes: [UInt8]) -> String {
    bytes.map { String($0, radix: 16).count == 1 ? "0" + String($0, radix: 16) : String($0, radix: 16) }.joined()
}

extension Float {
    init(pow2 exponent: Float) {
        var result: Float = 1
        let whole = Int(exponent.rounded(.down))
        for _ in 0..<abs(whole) { result = whole > 0 ? result * 2 : result / 2 }
        self = result
    }
}
