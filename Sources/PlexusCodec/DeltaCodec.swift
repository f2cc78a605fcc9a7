import PlexusCore
public import PlexusCrypto
internal import CZstd

/// A codec as the envelope header carries it: everything a decoder needs, nothing it must guess.
public enum WireCodec: Hashable, Sendable {
    case lossless
    case float16
    case bfloat16
    case int8(chunk: Int)
    /// `k` kept values out of the header's parameter count.
    case topK(k: Int, values: CodecSpec.TopKValues)

    /// The header's codec id byte.
    public var id: UInt8 {
        switch self {
        case .lossless: 0
        case .float16: 1
        case .bfloat16: 2
        case .int8: 3
        case .topK: 4
        }
    }

    /// The wire form of `spec` for a vector of `count` values.
    public init(_ spec: CodecSpec, count: Int) {
        switch spec {
        case .lossless: self = .lossless
        case .float16: self = .float16
        case .bfloat16: self = .bfloat16
        case .int8(let chunk): self = .int8(chunk: chunk)
        case .topK(let fraction, let values): self = .topK(k: CodecSpec.topKCount(fraction: fraction, of: count), values: values)
        }
    }
}

/// A compressed delta: the codec's raw layout, finished with zstd.
public struct EncodedDelta: Hashable, Sendable {
    public var codec: WireCodec
    public var parameterCount: Int
    /// Bytes of the codec's raw layout before zstd (checked against the zstd frame's content size).
    public var rawLength: Int
    /// One zstd frame.
    public var payload: [UInt8]

    public init(codec: WireCodec, parameterCount: Int, rawLength: Int, payload: [UInt8]) {
        self.codec = codec
        self.parameterCount = parameterCount
        self.rawLength = rawLength
        self.payload = payload
    }
}

/// zstd one-shot helpers for tests and benchmarks (the floor `plexus bench codec` prints).
package enum ZstdOneShot {
    package static func compress(_ bytes: [UInt8], level: Int = 1) -> [UInt8] {
        var out: [UInt8] = []
        bytes.withUnsafeBytes { ZstdCompressor(level: level).compress($0, appendingTo: &out) }
        return out
    }

    package static func decompress(_ frame: [UInt8], exactSize: Int) throws(DeltaError) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: exactSize)
        let decompressor = ZstdDecompressor()
        try rethrowingDeltaError {
            try frame.withUnsafeBytes { f in try out.withUnsafeMutableBytes { try decompressor.decompress(f, into: $0) } }
        }
        return out
    }
}

/// Compresses Float32 vectors with one codec. Holds a zstd context and scratch space: reuse one
/// encoder per task; it is not thread-safe.
public final class DeltaEncoder {
    public let codec: CodecSpec
    public let zstdLevel: Int
    private let compressor: ZstdCompressor
    private var scratch: [UInt8] = []

    /// The default zstd level, chosen by `plexus bench codec`: level 1 is within a few percent of
    /// level 3's ratio on model deltas at well over twice the speed.
    public static let defaultZstdLevel = 1

    /// - Parameter zstdLevel: 1…19 (negative levels trade ratio for speed). Default: ``defaultZstdLevel``.
    public init(codec: CodecSpec, zstdLevel: Int = DeltaEncoder.defaultZstdLevel) {
        self.codec = codec
        self.zstdLevel = zstdLevel
        self.compressor = ZstdCompressor(level: zstdLevel)
    }

    /// Compresses `values`.
    ///
    /// - Parameter reconstruct: when given (same count as `values`), receives exactly what a
    ///   decoder will produce — what CHOCO-Gossip adds to the sender's own public copy.
    /// - Throws: ``Reason/badInput`` when a value is NaN or infinite, or there are more
    ///   than ``DeltaDecoder/maximumParameterCount`` values.
    public func encode(
        _ values: UnsafeBufferPointer<Float>,
        reconstruct: UnsafeMutableBufferPointer<Float>? = nil
    ) throws(DeltaError) -> EncodedDelta {
        let n = values.count
        try checkEncodable(values)
        if let reconstruct { precondition(reconstruct.count == n, "reconstruct buffer has the wrong count") }
        let raw = rawLayout(values, reconstruct: reconstruct)
        let payload = [UInt8](unsafeUninitializedCapacity: ZstdCompressor.bound(raw.count)) { buffer, count in
            count = raw.withUnsafeBytes { compressor.compress($0, into: UnsafeMutableRawBufferPointer(buffer)) }
        }
        scratch = raw
        return EncodedDelta(codec: WireCodec(codec, count: n), parameterCount: n, rawLength: raw.count, payload: payload)
    }

    /// Encodes `values` and seals them in an envelope in one pass: zstd writes straight into the
    /// envelope's buffer, so the payload is never copied.
    ///
    /// - Parameters:
    ///   - header: the envelope header; its fields are written as given.
    ///   - key: the origin's signing key.
    ///   - reconstruct: as in ``encode(_:reconstruct:)``.
    public func seal(
        _ values: UnsafeBufferPointer<Float>,
        header: DeltaEnvelope.Header,
        key: Ed25519.PrivateKey,
        reconstruct: UnsafeMutableBufferPointer<Float>? = nil
    ) throws(DeltaError) -> [UInt8] {
        try checkEncodable(values)
        if let reconstruct { precondition(reconstruct.count == values.count, "reconstruct buffer has the wrong count") }
        let raw = rawLayout(values, reconstruct: reconstruct)
        defer { scratch = raw }
        let codec = WireCodec(codec, count: values.count)
        var prefix = DeltaEnvelope.headerBytes(
            header, codec: codec, parameterCount: values.count, rawLength: raw.count, payloadLength: 0
        )
        let bound = ZstdCompressor.bound(raw.count)
        let signatureCount = DeltaEnvelope.signatureByteCount
        return [UInt8](unsafeUninitializedCapacity: prefix.count + bound + signatureCount) { buffer, count in
            let out = UnsafeMutableRawBufferPointer(buffer)
            let payloadStart = prefix.count
            let payloadLength = raw.withUnsafeBytes { r in
                compressor.compress(r, into: UnsafeMutableRawBufferPointer(rebasing: out[payloadStart..<payloadStart + bound]))
            }
            // The payload length is the header's last field.
            withUnsafeBytes(of: UInt32(payloadLength).littleEndian) { prefix.replaceSubrange(payloadStart - 4..<payloadStart, with: $0) }
            prefix.withUnsafeBytes { out.baseAddress!.copyMemory(from: $0.baseAddress!, byteCount: payloadStart) }
            let bodyCount = payloadStart + payloadLength
            let digest = DeltaEnvelope.signedDigest(UnsafeRawBufferPointer(rebasing: out[0..<bodyCount]))
            let signature = key.signature(for: digest)
            signature.withUnsafeBytes { (out.baseAddress! + bodyCount).copyMemory(from: $0.baseAddress!, byteCount: signatureCount) }
            count = bodyCount + signatureCount
        }
    }

    private func checkEncodable(_ values: UnsafeBufferPointer<Float>) throws(DeltaError) {
        guard values.count <= DeltaDecoder.maximumParameterCount else {
            throw DeltaError(.badInput, "\(values.count) parameters exceed the maximum of \(DeltaDecoder.maximumParameterCount)")
        }
        if let i = FiniteVector.firstNonFinite(values) {
            throw DeltaError(.badInput, "value \(i) is NaN or infinite; only finite deltas can be sent")
        }
    }

    /// The codec's raw layout of `values`, before zstd (documented in ``DeltaEnvelope``).
    package func rawLayout(_ values: UnsafeBufferPointer<Float>, reconstruct: UnsafeMutableBufferPointer<Float>?) -> [UInt8] {
        let n = values.count
        let wire = WireCodec(codec, count: n)
        var raw: [UInt8]
        switch wire {
        case .lossless:
            raw = scratchBuffer(4 * n)
            raw.withUnsafeMutableBytes { out in
                values.withMemoryRebound(to: UInt32.self) { RawCodecs.shuffle32($0, into: out) }
            }
            if let reconstruct, let src = values.baseAddress {
                reconstruct.baseAddress!.update(from: src, count: n)
            }
        case .float16, .bfloat16:
            raw = scratchBuffer(2 * n)
            raw.withUnsafeMutableBytes { out in
                RawCodecs.encodeHalf(values, brain: wire == .bfloat16, into: out, reconstruct: reconstruct)
            }
        case .int8(let chunk):
            raw = scratchBuffer(4 * RawCodecs.chunkCount(n, chunk) + n)
            raw.withUnsafeMutableBytes { out in
                RawCodecs.encodeInt8(values, chunk: chunk, into: out, reconstruct: reconstruct)
            }
        case .topK(let k, let valueFormat):
            var writer = ByteWriter(capacity: RawCodecs.rawLengthBound(codec: wire, count: n))
            RawCodecs.encodeTopK(values, k: k, valueFormat: valueFormat, into: &writer, reconstruct: reconstruct)
            raw = writer.bytes
        }
        return raw
    }

    public func encode(_ values: [Float]) throws(DeltaError) -> EncodedDelta {
        try rethrowingDeltaError { try values.withUnsafeBufferPointer { try encode($0) } }
    }

    private func scratchBuffer(_ count: Int) -> [UInt8] {
        var buffer = scratch
        scratch = []
        if buffer.count != count {
            buffer.removeAll(keepingCapacity: true)
            buffer.append(contentsOf: repeatElement(0, count: count))
        }
        return buffer
    }
}

/// Decompresses what ``DeltaEncoder`` produced, from untrusted bytes. Not thread-safe.
public final class DeltaDecoder {
    /// The largest vector any envelope may carry: 2^28 parameters (1 GiB of float32).
    public static let maximumParameterCount = 1 << 28

    private let decompressor = ZstdDecompressor()
    private var raw: [UInt8] = []

    public init() {}

    /// Checks `codec`, `parameterCount` and `rawLength` against each other before any allocation.
    static func validate(codec: WireCodec, parameterCount: Int, rawLength: Int) throws(DeltaError) {
        guard parameterCount >= 0, parameterCount <= maximumParameterCount else {
            throw DeltaError(.wrongParameterCount, "\(parameterCount) parameters exceed the maximum of \(maximumParameterCount)")
        }
        switch codec {
        case .int8(let chunk):
            guard chunk >= 1, chunk <= CodecSpec.maximumInt8Chunk else {
                throw DeltaError(.badCodecParameters, "int8 chunk \(chunk) is outside 1…\(CodecSpec.maximumInt8Chunk)")
            }
        case .topK(let k, _):
            guard k <= parameterCount else {
                throw DeltaError(.badCodecParameters, "top-k keeps \(k) values of only \(parameterCount)")
            }
        default: break
        }
        let bound = RawCodecs.rawLengthBound(codec: codec, count: parameterCount)
        if RawCodecs.isExactLength(codec) {
            guard rawLength == bound else {
                throw DeltaError(.badLength, "raw length \(rawLength) does not match the \(bound) bytes of this codec for \(parameterCount) parameters")
            }
        } else {
            guard rawLength <= bound else {
                throw DeltaError(.badLength, "raw length \(rawLength) exceeds the \(bound) bytes this codec can need for \(parameterCount) parameters")
            }
        }
    }

    /// Decodes `payload` into `values` (whose count is the parameter count).
    public func decode(
        _ payload: UnsafeRawBufferPointer,
        codec: WireCodec,
        rawLength: Int,
        into values: UnsafeMutableBufferPointer<Float>
    ) throws(DeltaError) {
        let n = values.count
        try Self.validate(codec: codec, parameterCount: n, rawLength: rawLength)
        if raw.count != rawLength {
            raw.removeAll(keepingCapacity: true)
            raw.append(contentsOf: repeatElement(0, count: rawLength))
        }
        try rethrowingDeltaError { try raw.withUnsafeMutableBytes { out in
            if rawLength == 0 {
                // zstd still frames an empty input; check it declares zero bytes.
                var empty: UInt8 = 0
                try rethrowingDeltaError { try withUnsafeMutableBytes(of: &empty) { one in
                    try decompressor.decompress(payload, into: UnsafeMutableRawBufferPointer(rebasing: one[0..<0]))
                } }
            } else {
                try decompressor.decompress(payload, into: out)
            }
        } }
        try rethrowingDeltaError { try raw.withUnsafeBytes { rawBytes in
            switch codec {
            case .lossless:
                let bad = values.withMemoryRebound(to: UInt32.self) { bits -> Int? in
                    RawCodecs.unshuffle32(rawBytes, into: bits)
                    var bad: UInt32 = 0
                    for b in bits { bad |= (b & 0x7F80_0000 == 0x7F80_0000) ? 1 : 0 }
                    return bad != 0 ? bits.firstIndex { $0 & 0x7F80_0000 == 0x7F80_0000 } : nil
                }
                if let bad { throw DeltaError(.nonFinite, "value \(bad) is NaN or infinite") }
            case .float16:
                try RawCodecs.decodeHalf(rawBytes, brain: false, into: values)
            case .bfloat16:
                try RawCodecs.decodeHalf(rawBytes, brain: true, into: values)
            case .int8(let chunk):
                try RawCodecs.decodeInt8(rawBytes, chunk: chunk, into: values)
            case .topK(let k, let valueFormat):
                try RawCodecs.decodeTopK(rawBytes, k: k, valueFormat: valueFormat, into: values)
            }
        } }
    }

    public func decode(_ delta: EncodedDelta) throws(DeltaError) -> [Float] {
        try DeltaDecoder.validate(codec: delta.codec, parameterCount: delta.parameterCount, rawLength: delta.rawLength)
        var values = [Float](repeating: 0, count: delta.parameterCount)
        try rethrowingDeltaError { try values.withUnsafeMutableBufferPointer { v in try decode(delta, into: v) } }
        return values
    }

    /// Decodes `delta` into `values`, a caller's reusable buffer of ``EncodedDelta/parameterCount``
    /// values (no allocation on the receive path). When decoding fails, `values` is unspecified.
    public func decode(_ delta: EncodedDelta, into values: UnsafeMutableBufferPointer<Float>) throws(DeltaError) {
        guard values.count == delta.parameterCount else {
            throw DeltaError(.wrongParameterCount, "delta of \(delta.parameterCount) values for a buffer of \(values.count)")
        }
        try rethrowingDeltaError {
            try delta.payload.withUnsafeBytes { p in try decode(p, codec: delta.codec, rawLength: delta.rawLength, into: values) }
        }
    }
}

/// The C floor for `plexus bench codec`: libzstd alone, with reused contexts and preallocated
/// buffers, on the same raw layout the Swift path compresses.
package final class ZstdFloor {
    private let compressor: ZstdCompressor
    private let decompressor = ZstdDecompressor()
    private let raw: [UInt8]
    private var frame: [UInt8]
    private var frameLength = 0
    private var output: [UInt8]

    package init(raw: [UInt8], level: Int) {
        self.raw = raw
        self.compressor = ZstdCompressor(level: level)
        self.frame = [UInt8](repeating: 0, count: ZstdCompressor.bound(raw.count))
        self.output = [UInt8](repeating: 0, count: raw.count)
        compress()
    }

    package func compress() {
        frameLength = raw.withUnsafeBytes { r in frame.withUnsafeMutableBytes { compressor.compress(r, into: $0) } }
    }

    package func decompress() {
        let count = frameLength
        frame.withUnsafeBytes { f in
            output.withUnsafeMutableBytes { try! decompressor.decompress(UnsafeRawBufferPointer(rebasing: f[0..<count]), into: $0) }
        }
    }
}

/// The version of the libzstd this process runs, e.g. "1.5.4". Test vectors pin the encoder's
/// exact bytes for one libzstd version; other versions must still decode them.
package func zstdVersion() -> String {
    String(cString: ZSTD_versionString())
}
