package import NIOCore

/// The frame layer: every byte on a Plexus connection is a sequence of frames.
///
/// ```
/// +-----------------+---------------------------+
/// | length: u32 LE  | body: `length` bytes      |
/// +-----------------+---------------------------+
/// ```
///
/// The body is a plaintext handshake message until the handshake completes, a sealed record
/// after. The declared length is checked against ``FrameLimit/maximum`` *before* any of the body
/// is buffered: a larger declaration closes the connection.
package enum Framing {
    /// Bytes in the length prefix.
    package static let headerByteCount = 4
    /// The frame limit before authentication: handshake messages are a few hundred bytes, so an
    /// unauthenticated peer can never make a node buffer more than this.
    package static let handshakeFrameLimit = 1024
}

/// The current maximum frame body size of one connection.
///
/// Shared by the decoder and the connection handler, both confined to the channel's event loop:
/// the handler raises it from ``Framing/handshakeFrameLimit`` to the configured maximum once the
/// peer has authenticated.
package final class FrameLimit {
    package var maximum: Int
    package init(maximum: Int) { self.maximum = maximum }
}

@available(*, unavailable)
extension FrameLimit: Sendable {}

/// A declared frame length over the limit; the connection is closed.
package struct FrameTooLargeError: Error, Equatable, CustomStringConvertible {
    package var declared: Int
    package var maximum: Int
    package init(declared: Int, maximum: Int) {
        self.declared = declared
        self.maximum = maximum
    }
    package var description: String { "declared frame length \(declared) exceeds the maximum of \(maximum) bytes" }
}

/// Splits the byte stream into frame bodies (u32 little-endian length prefix).
package struct FrameDecoder: ByteToMessageDecoder {
    package typealias InboundOut = ByteBuffer

    private let limit: FrameLimit

    package init(limit: FrameLimit) { self.limit = limit }

    package mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let frame = try Self.nextFrame(in: &buffer, maximum: limit.maximum) else { return .needMoreData }
        context.fireChannelRead(Self.wrapInboundOut(frame))
        return .continue
    }

    package mutating func decodeLast(
        context: ChannelHandlerContext,
        buffer: inout ByteBuffer,
        seenEOF: Bool
    ) throws -> DecodingState {
        // A partial frame left at end of stream is dropped with the connection.
        try decode(context: context, buffer: &buffer)
    }

    /// The next frame body in `buffer`, `nil` when more bytes are needed.
    ///
    /// - Throws: ``FrameTooLargeError`` as soon as the 4-byte header declares more than `maximum`.
    package static func nextFrame(in buffer: inout ByteBuffer, maximum: Int) throws -> ByteBuffer? {
        guard let declared = buffer.getInteger(at: buffer.readerIndex, endianness: .little, as: UInt32.self) else {
            return nil
        }
        let length = Int(declared)
        guard length <= maximum else { throw FrameTooLargeError(declared: length, maximum: maximum) }
        guard buffer.readableBytes >= Framing.headerByteCount + length else { return nil }
        buffer.moveReaderIndex(forwardBy: Framing.headerByteCount)
        return buffer.readSlice(length: length)
    }
}

/// Prefixes every outbound frame body with its u32 little-endian length.
package struct FrameEncoder: MessageToByteEncoder {
    package typealias OutboundIn = ByteBuffer

    package init() {}

    package func encode(data: ByteBuffer, out: inout ByteBuffer) throws {
        guard data.readableBytes <= Int(UInt32.max) else {
            throw FrameTooLargeError(declared: data.readableBytes, maximum: Int(UInt32.max))
        }
        out.reserveCapacity(Framing.headerByteCount + data.readableBytes)
        out.writeInteger(UInt32(data.readableBytes), endianness: .little)
        out.writeImmutableBuffer(data)
    }
}
