import PlexusCore
import NIOCore
import NIOEmbedded
import NIOTestUtils
import PlexusTransport
import Testing

@Suite struct FramingTests {
    @Test func decoderHandlesByteAtATimeAndManyFramesPerBuffer() throws {
        let bodies: [[UInt8]] = [[], [1], Array(repeating: 9, count: 300), Array("plexus".utf8)]
        let pairs = bodies.map { body in
            (ByteBuffer(bytes: frame(body)), [ByteBuffer(bytes: body)])
        }
        try ByteToMessageDecoderVerifier.verifyDecoder(inputOutputPairs: pairs) {
            FrameDecoder(limit: FrameLimit(maximum: 1024))
        }
    }

    @Test func oversizeDeclarationFailsBeforeTheBodyArrives() throws {
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(FrameDecoder(limit: FrameLimit(maximum: 100))))
        // Only the 4-byte header: a declaration of 101 bytes is refused at once.
        #expect(throws: FrameTooLargeError(declared: 101, maximum: 100)) {
            try channel.writeInbound(ByteBuffer(bytes: [101, 0, 0, 0]))
        }
        _ = try? channel.finish()
    }

    @Test func maliciousLengthWith32BitFieldIsRefused() throws {
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(FrameDecoder(limit: FrameLimit(maximum: 1 << 20))))
        #expect(throws: FrameTooLargeError.self) {
            try channel.writeInbound(ByteBuffer(bytes: [0xFF, 0xFF, 0xFF, 0xFF, 1, 2, 3]))
        }
        _ = try? channel.finish()
    }

    @Test func exactlyTheLimitIsAccepted() throws {
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(FrameDecoder(limit: FrameLimit(maximum: 8))))
        try channel.writeInbound(ByteBuffer(bytes: frame(Array(repeating: 1, count: 8))))
        let body = try channel.readInbound(as: ByteBuffer.self)
        #expect(body?.readableBytes == 8)
        #expect(try channel.finish().isClean)
    }

    @Test func encoderPrefixesLittleEndianLength() throws {
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(MessageToByteHandler(FrameEncoder()))
        try channel.writeOutbound(ByteBuffer(bytes: Array(repeating: 7, count: 258)))
        let out = try #require(try channel.readOutbound(as: ByteBuffer.self))
        #expect(Array(out.readableBytesView.prefix(4)) == [2, 1, 0, 0])
        #expect(out.readableBytes == 262)
        #expect(try channel.finish().isClean)
    }

    @Test func backoffDoublesCapsAndJitters() {
        let policy = ReconnectPolicy(initialDelay: .milliseconds(100), maximumDelay: .seconds(5), jitter: 0.5)
        #expect(policy.baseDelay(attempt: 0) == .milliseconds(100))
        #expect(policy.baseDelay(attempt: 1) == .milliseconds(200))
        #expect(policy.baseDelay(attempt: 5) == .milliseconds(3200))
        #expect(policy.baseDelay(attempt: 6) == .seconds(5))
        #expect(policy.baseDelay(attempt: 1000) == .seconds(5))
        #expect(policy.delay(attempt: 2, unit: 0) == .milliseconds(400))
        #expect(policy.delay(attempt: 2, unit: 0.5) == .milliseconds(300))
        var rng = SplitMix64(seed: 42)
        var again = SplitMix64(seed: 42)
        #expect(rng.next() == again.next())
    }
}
