/// Appends fixed-width little-endian integers and LEB128 varints to a byte array.
///
/// Every multi-byte integer Plexus writes — on the wire, in state files, in test vectors —
/// goes through this type, so there is one place that fixes the byte order.
public struct ByteWriter: Sendable {
    public var bytes: [UInt8]

    @inlinable
    public init(capacity: Int = 0) {
        self.bytes = []
        self.bytes.reserveCapacity(capacity)
    }

    @inlinable
    public mutating func write(_ value: UInt8) { bytes.append(value) }

    @inlinable
    public mutating func write<T: FixedWidthInteger>(littleEndian value: T) {
        var v = value.littleEndian
        withUnsafeBytes(of: &v) { bytes.append(contentsOf: $0) }
    }

    @inlinable
    public mutating func write(float64 value: Double) { write(littleEndian: value.bitPattern) }

    @inlinable
    public mutating func write(float32 value: Float) { write(littleEndian: value.bitPattern) }

    @inlinable
    public mutating func write<C: Collection>(contentsOf other: C) where C.Element == UInt8 {
        bytes.append(contentsOf: other)
    }

    /// Writes `value` as an unsigned LEB128 varint: 7 bits per byte, low bits first,
    /// the high bit set on every byte but the last. At most 10 bytes for a `UInt64`.
    @inlinable
    public mutating func write(varint value: UInt64) {
        var v = value
        while v >= 0x80 {
            bytes.append(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        bytes.append(UInt8(v))
    }
}

/// Reads what ``ByteWriter`` writes, from untrusted bytes.
///
/// Every read checks the remaining length first and throws ``ByteReader/Error/truncated``
/// rather than reading past the end; nothing here can trap on hostile input.
public struct ByteReader {
    public enum Error: Swift.Error, Equatable, Sendable, CustomStringConvertible {
        /// The input ended `needed` bytes short while reading `what`.
        case truncated(what: String, needed: Int)
        /// A varint ran longer than 10 bytes or overflowed 64 bits.
        case malformedVarint

        public var description: String {
            switch self {
            case .truncated(let what, let needed):
                return "input ends \(needed) byte\(needed == 1 ? "" : "s") short while reading \(what)"
            case .malformedVarint:
                return "malformed varint: longer than 10 bytes or larger than 2^64 - 1"
            }
        }
    }

    public let base: UnsafeRawBufferPointer
    public var offset: Int = 0

    /// Reads from `base`, which must stay valid while the reader is used.
    @inlinable
    public init(_ base: UnsafeRawBufferPointer) { self.base = base }

    @inlinable
    public var remaining: Int { base.count - offset }
    @inlinable
    public var isAtEnd: Bool { offset == base.count }

    @inlinable
    public mutating func readByte(_ what: @autoclosure () -> String = "a byte") throws(Error) -> UInt8 {
        guard remaining >= 1 else { throw .truncated(what: what(), needed: 1) }
        defer { offset += 1 }
        return base[offset]
    }

    @inlinable
    public mutating func read<T: FixedWidthInteger>(
        _: T.Type,
        _ what: @autoclosure () -> String
    ) throws(Error) -> T {
        let size = MemoryLayout<T>.size
        guard remaining >= size else { throw .truncated(what: what(), needed: size - remaining) }
        var value: T = 0
        withUnsafeMutableBytes(of: &value) { $0.copyMemory(from: UnsafeRawBufferPointer(rebasing: base[offset..<offset + size])) }
        offset += size
        return T(littleEndian: value)
    }

    @inlinable
    public mutating func readFloat64(_ what: @autoclosure () -> String) throws(Error) -> Double {
        Double(bitPattern: try read(UInt64.self, what()))
    }

    @inlinable
    public mutating func readFloat32(_ what: @autoclosure () -> String) throws(Error) -> Float {
        Float(bitPattern: try read(UInt32.self, what()))
    }

    /// Returns the next `count` bytes without copying them.
    @inlinable
    public mutating func readSlice(_ count: Int, _ what: @autoclosure () -> String) throws(Error) -> UnsafeRawBufferPointer {
        precondition(count >= 0, "negative slice length")
        guard remaining >= count else { throw .truncated(what: what(), needed: count - remaining) }
        defer { offset += count }
        return UnsafeRawBufferPointer(rebasing: base[offset..<offset + count])
    }

    @inlinable
    public mutating func readVarint(_ what: @autoclosure () -> String) throws(Error) -> UInt64 {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            guard remaining >= 1 else { throw .truncated(what: what(), needed: 1) }
            let byte = base[offset]
            offset += 1
            if shift == 63 && byte > 1 { throw .malformedVarint }
            result |= UInt64(byte & 0x7F) << shift
            if byte & 0x80 == 0 { return result }
            shift += 7
            if shift > 63 { throw .malformedVarint }
        }
    }
}
