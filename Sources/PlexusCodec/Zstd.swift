internal import CZstd
import PlexusCore

/// One zstd compression context, reused across calls. Not thread-safe: one per task.
final class ZstdCompressor {
    private let context: OpaquePointer
    let level: Int32

    init(level: Int) {
        guard let context = ZSTD_createCCtx() else { fatalError("ZSTD_createCCtx: out of memory") }
        self.context = context
        self.level = Int32(clamping: level)
        ZSTD_CCtx_setParameter(context, ZSTD_c_compressionLevel, self.level)
        // Every frame records its content size: the decoder checks it against the header first.
        ZSTD_CCtx_setParameter(context, ZSTD_c_contentSizeFlag, 1)
        ZSTD_CCtx_setParameter(context, ZSTD_c_checksumFlag, 0)
    }

    deinit { ZSTD_freeCCtx(context) }

    static func bound(_ count: Int) -> Int { ZSTD_compressBound(count) }

    /// Compresses `source` as one frame into `destination`, which must hold at least
    /// ``bound(_:)`` bytes; returns the frame's size.
    func compress(_ source: UnsafeRawBufferPointer, into destination: UnsafeMutableRawBufferPointer) -> Int {
        precondition(destination.count >= ZSTD_compressBound(source.count), "zstd destination smaller than compressBound")
        let written = ZSTD_compress2(context, destination.baseAddress, destination.count, source.baseAddress, source.count)
        precondition(ZSTD_isError(written) == 0, "zstd compression failed: \(String(cString: ZSTD_getErrorName(written)))")
        return written
    }

    /// Compresses `source` as one frame appended to `output`.
    func compress(_ source: UnsafeRawBufferPointer, appendingTo output: inout [UInt8]) {
        let capacity = ZSTD_compressBound(source.count)
        let frame = [UInt8](unsafeUninitializedCapacity: capacity) { buffer, count in
            count = compress(source, into: UnsafeMutableRawBufferPointer(buffer))
        }
        output.append(contentsOf: frame)
    }
}

/// One zstd decompression context, reused across calls. Not thread-safe: one per task.
///
/// Decompression is bounded by construction: the caller states the exact size it expects, the
/// frame must declare that size and be the only thing in the input, and output goes straight
/// into a buffer of that size — a frame that would produce more fails instead of truncating.
final class ZstdDecompressor {
    private let context: OpaquePointer
    /// Largest back-reference window accepted: 2^27 bytes (zstd's own default limit).
    static let windowLogMax: Int32 = 27

    init() {
        guard let context = ZSTD_createDCtx() else { fatalError("ZSTD_createDCtx: out of memory") }
        self.context = context
        ZSTD_DCtx_setParameter(context, ZSTD_d_windowLogMax, Self.windowLogMax)
    }

    deinit { ZSTD_freeDCtx(context) }

    func decompress(_ source: UnsafeRawBufferPointer, into destination: UnsafeMutableRawBufferPointer) throws(DeltaError) {
        guard let base = source.baseAddress, source.count > 0 else {
            throw DeltaError(.decompression, "empty zstd payload")
        }
        let declared = ZSTD_getFrameContentSize(base, source.count)
        if declared == ZSTD_CONTENTSIZE_ERROR {
            throw DeltaError(.decompression, "payload is not a zstd frame")
        }
        if declared == ZSTD_CONTENTSIZE_UNKNOWN {
            throw DeltaError(.decompression, "zstd frame does not declare its content size")
        }
        guard declared == UInt64(destination.count) else {
            throw DeltaError(
                .decompression,
                "zstd frame declares \(declared) bytes of content, the header declares \(destination.count)"
            )
        }
        let frameSize = ZSTD_findFrameCompressedSize(base, source.count)
        if ZSTD_isError(frameSize) != 0 {
            throw DeltaError(.decompression, "zstd frame is malformed: \(String(cString: ZSTD_getErrorName(frameSize)))")
        }
        guard frameSize == source.count else {
            throw DeltaError(.trailingBytes, "\(source.count - frameSize) bytes follow the zstd frame")
        }
        let produced = ZSTD_decompressDCtx(context, destination.baseAddress, destination.count, base, source.count)
        if ZSTD_isError(produced) != 0 {
            throw DeltaError(.decompression, "zstd: \(String(cString: ZSTD_getErrorName(produced)))")
        }
        guard produced == destination.count else {
            throw DeltaError(.decompression, "zstd frame produced \(produced) bytes, expected \(destination.count)")
        }
    }
}
