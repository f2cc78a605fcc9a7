import ArgumentParser
import PlexusCodec
import PlexusCore
import PlexusCrypto

#if canImport(Glibc)
import Glibc
#endif

struct BenchCodec: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "codec",
        abstract: "Time encode+sign and verify+decode for every codec, beside the C floor.",
        discussion: """
            For each size and codec: the median over --repeat runs of encode+sign (codec transform, \
            zstd, BLAKE2b, Ed25519) and verify+decode (BLAKE2b, Ed25519, zstd, codec transform), the \
            compression ratio (float32 bytes ÷ envelope bytes, header and signature included) and \
            throughput in float32 MB/s. Beside each time, the floor measured in the same run on the \
            same buffers: the libzstd and libsodium calls alone, and a memcpy of the vector. \
            Build with -c release: `swift run -c release plexus bench codec`.
            """
    )

    @Option(help: "Vector sizes, comma-separated.")
    var sizes: String = "1000000,10000000"

    @Option(help: "Codecs, comma-separated (see `codec` in the topology format).")
    var codecs: String = "lossless,f16,bf16,int8,topk:0.01+f16,topk:0.01+int8,topk:0.1"

    @Option(help: "zstd level.")
    var level: Int = DeltaEncoder.defaultZstdLevel

    @Option(help: "Runs per measurement; the median is reported.")
    var `repeat`: Int = 5

    func validate() throws {
        guard `repeat` >= 1 && `repeat` <= 1000 else { throw ValidationError("--repeat must be 1…1000") }
        guard (-7...19).contains(level) else { throw ValidationError("--level must be -7…19") }
    }

    func run() throws {
        let sizeList = try sizes.split(separator: ",").map { text -> Int in
            guard let n = Int(text.filter { $0 != " " }), n >= 1, n <= 100_000_000 else {
                throw ValidationError("--sizes: '\(text)' is not a size from 1 to 100000000")
            }
            return n
        }
        let specs = try codecs.split(separator: ",").map { text -> CodecSpec in
            do { return try CodecSpec(parsing: String(text)) } catch { throw ValidationError("--codecs: \(error)") }
        }
        let key = Ed25519.PrivateKey()
        let planHash = BLAKE2b.hash256(Array("bench".utf8))
        let origin = PeerID("bench")!
        print("plexus bench codec — zstd level \(level), median of \(`repeat`) runs, libzstd \(zstdVersion())")
        for n in sizeList {
            let values = syntheticDelta(count: n)
            let copier = MemcpyFloor(count: n)
            let memcpyTime = median(`repeat`) { copier.copy(values) }
            print("")
            print("\(n) parameters (\(megabytes(4 * n)) MB float32); memcpy \(ms(memcpyTime)) ms = \(throughput(4 * n, memcpyTime)) MB/s")
            print(
                pad("codec", 16) + pad("ratio", 9) + pad("enc+sign ms", 13) + pad("floor", 9) + pad("×", 7)
                    + pad("MB/s", 8) + pad("verify+dec ms", 15) + pad("floor", 9) + pad("×", 7) + "MB/s"
            )
            var output = [Float](repeating: 0, count: n)
            let digestInput = [UInt8](repeating: 7, count: 32)
            for spec in specs {
                let encoder = DeltaEncoder(codec: spec, zstdLevel: level)
                let decoder = DeltaDecoder()
                let verifier = EnvelopeVerifier(planHash: planHash, parameterCount: n)
                let header = DeltaEnvelope.Header(
                    kind: .keyframe, planHash: planHash, origin: origin, sequence: 1, round: 1,
                    baseSequence: 0, sampleCount: 1
                )
                var envelope: [UInt8] = []
                let encodeTime = median(`repeat`) {
                    envelope = values.withUnsafeBufferPointer { try! encoder.seal($0, header: header, key: key) }
                }
                let decodeTime = median(`repeat`) {
                    _ = envelope.withUnsafeBytes { bytes in
                        output.withUnsafeMutableBufferPointer { out in
                            try! verifier.open(bytes, publicKey: { _ in key.publicKey }, decoder: decoder, into: out)
                        }
                    }
                }
                // The floor: the C library calls alone on this codec's own buffers.
                let raw = values.withUnsafeBufferPointer { encoder.rawLayout($0, reconstruct: nil) }
                let zstd = ZstdFloor(raw: raw, level: level)
                let digest = BLAKE2b.hash256(digestInput)
                let signature = key.signature(for: digest)
                let hashTime = median(`repeat`) { _ = BLAKE2b.hash256(envelope) }
                let signTime = median(`repeat`) { _ = key.signature(for: digest) }
                let verifyTime = median(`repeat`) { _ = key.publicKey.isValidSignature(signature, for: digest) }
                let compressTime = median(`repeat`) { zstd.compress() }
                let decompressTime = median(`repeat`) { zstd.decompress() }
                let encodeFloor = compressTime + hashTime + signTime
                let decodeFloor = decompressTime + hashTime + verifyTime
                let ratio = Double(4 * n) / Double(envelope.count)
                let encodeOverFloor: Double = encodeTime / encodeFloor
                let decodeOverFloor: Double = decodeTime / decodeFloor
                print(
                    pad(spec.description, 16) + pad(fixed(ratio, 1) + "×", 9)
                        + pad(ms(encodeTime), 13) + pad(ms(encodeFloor), 9) + pad(fixed(encodeOverFloor, 2), 7)
                        + pad(throughput(4 * n, encodeTime), 8)
                        + pad(ms(decodeTime), 15) + pad(ms(decodeFloor), 9) + pad(fixed(decodeOverFloor, 2), 7)
                        + throughput(4 * n, decodeTime)
                )
            }
            let sample = [UInt8](repeating: 1, count: 4 * n)
            let blake = median(`repeat`) { _ = BLAKE2b.hash256(sample) }
            let digest = BLAKE2b.hash256(digestInput)
            let signature = key.signature(for: digest)
            let verify = median(`repeat`) { _ = key.publicKey.isValidSignature(signature, for: digest) }
            print("libsodium here: BLAKE2b \(throughput(4 * n, blake)) MB/s; Ed25519 verify \(fixed(verify * 1e6, 0)) µs")
        }
        print("")
        print("floor = zstd on this codec's raw layout + BLAKE2b of the envelope + one Ed25519 sign (verify); × = Swift path ÷ floor.")
    }
}

/// A model delta's shape: small values, mostly near zero, a few larger ones.
func syntheticDelta(count: Int) -> [Float] {
    var state: UInt64 = 0x1234_5678
    return (0..<count).map { _ in
        state = state &* 6364136223846793005 &+ 1442695040888963407
        let u = Float(state >> 40) / Float(1 << 24) - 0.5
        return u * u * u * 0.08
    }
}

func median(_ runs: Int, _ body: () -> Void) -> Double {
    body()  // warm-up: page in buffers, size scratch space
    var times: [Double] = []
    let clock = ContinuousClock()
    for _ in 0..<runs {
        let elapsed = clock.measure(body)
        times.append(Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18)
    }
    times.sort()
    return times[times.count / 2]
}

/// A memcpy of `values` into a buffer allocated (and faulted in) once.
final class MemcpyFloor {
    private var destination: [Float]
    init(count: Int) { destination = [Float](repeating: 0, count: count) }
    func copy(_ values: [Float]) {
        values.withUnsafeBytes { src in
            destination.withUnsafeMutableBytes { dst in _ = memcpy(dst.baseAddress!, src.baseAddress!, src.count) }
        }
    }
}

func ms(_ seconds: Double) -> String { fixed(seconds * 1000, seconds < 0.01 ? 3 : 1) }
func megabytes(_ bytes: Int) -> String { fixed(Double(bytes) / 1e6, 0) }
func throughput(_ bytes: Int, _ seconds: Double) -> String { fixed(Double(bytes) / seconds / 1e6, 0) }

/// `value` with `digits` decimals (PlexusCore's `Format.fixed`).
func fixed(_ value: Double, _ digits: Int) -> String { Format.fixed(value, decimals: digits) }

func pad(_ text: String, _ width: Int) -> String {
    text.count >= width ? text + " " : text + String(repeating: " ", count: width - text.count)
}
