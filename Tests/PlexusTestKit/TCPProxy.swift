import NIOCore
import NIOPosix
import Synchronization

/// A userspace TCP forwarder on loopback for tests: listens on 127.0.0.1 (ephemeral port) and
/// relays every connection to a target port, with controls that apply to all connections at once:
///
/// - ``Mode/forward``: bytes pass (after ``delay``, if set).
/// - ``Mode/blackhole``: bytes are dropped in both directions, and so are closes: a side that
///   closes leaves the other open (a partition).
/// - ``Mode/pause``: bytes are held (up to ``maximumHeldBytes`` per direction, then dropped) and
///   released in order when the mode returns to `forward`.
///
/// New connections are accepted and relayed in every mode. Reusable by later tests.
/// NOT FOR PUBLIC CONSUMPTION: a test fixture, shared by the transport and CLI tests.
package final class TCPProxy: Sendable {
    package enum Mode: Sendable { case forward, blackhole, pause }

    /// One direction of one relayed connection.
    final class Pipe: Sendable {
        let target: any Channel
        let held = Mutex<[ByteBuffer]>([])
        let heldBytes = Mutex(0)
        init(target: any Channel) { self.target = target }
    }

    package let port: Int
    private let server: any Channel
    private let control: Control

    final class Control: Sendable {
        let mode = Mutex(Mode.forward)
        let delay = Mutex(Duration.zero)
        let pipes = Mutex<[Pipe]>([])
        let channels = Mutex<[any Channel]>([])
        static let maximumHeldBytes = 64 << 20

        func relay(_ buffer: ByteBuffer, through pipe: Pipe) {
            switch mode.withLock({ $0 }) {
            case .blackhole:
                return
            case .pause:
                let size = buffer.readableBytes
                let fits = pipe.heldBytes.withLock { held in
                    guard held + size <= Self.maximumHeldBytes else { return false }
                    held += size
                    return true
                }
                if fits { pipe.held.withLock { $0.append(buffer) } }
            case .forward:
                let delay = delay.withLock { $0 }
                if delay == .zero {
                    pipe.target.writeAndFlush(buffer, promise: nil)
                } else {
                    let target = pipe.target
                    let (seconds, atto) = delay.components
                    target.eventLoop.scheduleTask(in: .nanoseconds(seconds * 1_000_000_000 + atto / 1_000_000_000)) {
                        target.writeAndFlush(buffer, promise: nil)
                    }
                }
            }
        }

        func release() {
            for pipe in pipes.withLock({ $0 }) {
                let held = pipe.held.withLock { held in
                    defer { held = [] }
                    return held
                }
                pipe.heldBytes.withLock { $0 = 0 }
                for buffer in held { pipe.target.write(buffer, promise: nil) }
                pipe.target.flush()
            }
        }
    }

    /// Relays what one side reads into a pipe toward the other side; closes the other side with it.
    final class Relay: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        let pipe: Pipe
        let control: Control
        init(pipe: Pipe, control: Control) {
            self.pipe = pipe
            self.control = control
        }
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            control.relay(unwrapInboundIn(data), through: pipe)
        }
        func channelInactive(context: ChannelHandlerContext) {
            // A partition does not carry FINs either: the other side learns nothing.
            if control.mode.withLock({ $0 }) != .blackhole { pipe.target.close(promise: nil) }
            context.fireChannelInactive()
        }
        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            context.close(promise: nil)
        }
    }

    private init(server: any Channel, port: Int, control: Control) {
        self.server = server
        self.port = port
        self.control = control
    }

    /// Starts a proxy in front of `127.0.0.1:targetPort`.
    package static func start(targetPort: Int) async throws -> TCPProxy {
        let control = Control()
        let group = MultiThreadedEventLoopGroup.singleton
        let server = try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.autoRead, value: false)
            .childChannelInitializer { inbound in
                ClientBootstrap(group: inbound.eventLoop)
                    .channelOption(.autoRead, value: false)
                    .connect(host: "127.0.0.1", port: targetPort)
                    .flatMap { outbound in
                        let toTarget = Pipe(target: outbound)
                        let toClient = Pipe(target: inbound)
                        control.pipes.withLock { $0 += [toTarget, toClient] }
                        control.channels.withLock { $0 += [inbound, outbound] }
                        return outbound.pipeline.addHandler(Relay(pipe: toClient, control: control))
                            .flatMap { inbound.pipeline.addHandler(Relay(pipe: toTarget, control: control)) }
                            .flatMap { outbound.setOption(.autoRead, value: true) }
                            .flatMap { inbound.setOption(.autoRead, value: true) }
                    }
                    .flatMapErrorThrowing { error in
                        inbound.close(promise: nil)
                        throw error
                    }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        let proxy = TCPProxy(server: server, port: server.localAddress?.port ?? 0, control: control)
        return proxy
    }

    package var mode: Mode {
        get { control.mode.withLock { $0 } }
    }

    /// Switches every connection (existing and new) to `mode`; back to `forward` releases what a pause held.
    package func set(_ mode: Mode) {
        control.mode.withLock { $0 = mode }
        if mode == .forward { control.release() }
    }

    /// Delays every forwarded chunk by this much (order is kept).
    package func setDelay(_ delay: Duration) {
        control.delay.withLock { $0 = delay }
    }

    /// Closes every relayed connection (both sides).
    package func closeAll() {
        for channel in control.channels.withLock({ $0 }) { channel.close(promise: nil) }
    }

    package func stop() async {
        closeAll()
        try? await server.close()
    }
}
