public import Logging
public import PlexusCore
public import ServiceLifecycle
import NIOCore
import NIOPosix

/// The secure peer-to-peer mesh: listens, dials every allowed neighbour with backoff, runs the
/// authenticated handshake on every connection, and keeps one encrypted session per neighbour.
///
/// Run it as a `Service` (or call ``run()`` in a task); cancel the task or trigger a graceful
/// shutdown to stop it. Events arrive on ``events`` in order; ``send(_:to:)`` seals a message
/// onto the neighbour's session.
public final class PeerMesh: Service, Sendable {
    let core: MeshCore
    private let group: any EventLoopGroup

    public init(configuration: MeshConfiguration, logger: Logger) {
        self.core = MeshCore(configuration: configuration, logger: logger)
        self.group = MultiThreadedEventLoopGroup.singleton
    }

    /// Everything that happens on the mesh. Finishes when ``run()`` returns.
    public var events: AsyncStream<MeshEvent> { core.events }

    /// The port the mesh listens on, once bound (waits until then; 0 if the mesh stopped unbound).
    public var boundPort: Int {
        get async { await core.boundPort() }
    }

    public var counters: MeshCounters {
        get async { core.counters }
    }

    /// Seals `message` onto the session with `peer`.
    ///
    /// While a simultaneous-dial duplicate is being resolved the session may swap connections
    /// silently; a send in that window waits for the replacement (at most the handshake timeout).
    ///
    /// - Returns: `false` when there is no open session with `peer`, the message is larger than
    ///   ``MeshConfiguration/maximumMessageSize``, or the write failed.
    public func send(_ message: [UInt8], to peer: PeerID) async -> Bool {
        guard message.count <= core.configuration.maximumMessageSize else { return false }
        // A write can lose the race with a handover (the connection was just superseded): it then
        // fails without sealing anything, and is retried once on the replacement.
        var tried: (any Channel)?
        for _ in 0..<2 {
            guard let channel = await core.sessionChannelAwaitingHandover(for: peer), channel !== tried else {
                return false
            }
            do {
                try await channel.writeAndFlush(ByteBuffer(bytes: message)).get()
                core.messageSent()
                return true
            } catch {
                tried = channel
                // The handler refuses writes only once its connection is closing (closed, or
                // superseded and draining, which closes within the grace period); closeFuture
                // completes after channelInactive has reported the handover to the core.
                try? await channel.closeFuture.get()
            }
        }
        return false
    }

    /// Replaces the allowed neighbours: new ones are dialled, removed ones' sessions are closed,
    /// changed keys are enforced from the next handshake on.
    public func updatePeers(_ peers: [PeerID: MeshPeer]) async {
        core.updatePeers(peers)
    }

    /// Binds, dials and serves until the task is cancelled or a graceful shutdown is triggered.
    ///
    /// - Throws: ``MeshError`` with code ``MeshError/Code/bindFailed`` naming host:port when the
    ///   listening socket cannot be bound.
    public func run() async throws {
        let configuration = core.configuration
        guard core.markStarted() else {
            throw MeshError(code: .alreadyRunning, message: "this mesh is already running (or ran); create a new PeerMesh")
        }
        let server: any Channel
        do {
            server = try await makeServerBootstrap()
                .bind(host: configuration.listen.host, port: configuration.listen.port).get()
        } catch {
            core.stop()
            core.finish()
            throw MeshError(
                code: .bindFailed,
                message: "cannot listen on \(configuration.listen.host):\(configuration.listen.port)",
                cause: error
            )
        }
        let port = server.localAddress?.port ?? configuration.listen.port
        core.logger.info("Mesh listening", metadata: ["host": "\(configuration.listen.host)", "port": "\(port)"])
        core.didBind(port: port)

        let (commands, commandContinuation) = AsyncStream<(PeerID, Int)>.makeStream()
        await withTaskCancellationOrGracefulShutdownHandler {
            await withDiscardingTaskGroup { group in
                core.startDialling(commandContinuation)
                for await (peer, generation) in commands {
                    group.addTask { await self.dialLoop(peer: peer, generation: generation) }
                }
                group.cancelAll()
            }
        } onCancelOrGracefulShutdown: { [core] in
            core.stop()
        }
        core.stop()
        try? await server.close()
        core.logger.info("Mesh stopped")
        core.finish()
    }

    // MARK: Bootstraps

    private func makeServerBootstrap() -> ServerBootstrap {
        let core = self.core
        return ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            // Lets the kernel notice a peer that vanished without closing (a half-open session).
            .childChannelOption(.socketOption(.so_keepalive), value: 1)
            .childChannelInitializer { channel in
                let remote = channel.remoteAddress.map { "\($0)" } ?? "?"
                guard core.admitInbound(remote: remote) else {
                    return channel.close()
                }
                return channel.eventLoop.makeCompletedFuture {
                    try Self.addHandlers(to: channel, role: .responder, core: core, holdsPendingSlot: true, outcome: nil)
                }
            }
    }

    private static func addHandlers(
        to channel: any Channel,
        role: HandshakeStateMachine.Role,
        core: MeshCore,
        holdsPendingSlot: Bool,
        outcome: DialOutcome?
    ) throws {
        let limit = FrameLimit(maximum: Framing.handshakeFrameLimit)
        let maximumFrame = core.configuration.maximumFrameSize
        let operations = channel.pipeline.syncOperations
        try operations.addHandler(
            ByteToMessageHandler(
                FrameDecoder(limit: limit),
                // The decoder refuses oversize declarations before buffering; this is a backstop.
                maximumBufferSize: maximumFrame + Framing.headerByteCount + 64 * 1024
            )
        )
        try operations.addHandler(MessageToByteHandler(FrameEncoder()))
        try operations.addHandler(
            PeerConnectionHandler(role: role, core: core, limit: limit, holdsPendingSlot: holdsPendingSlot, outcome: outcome)
        )
    }

    // MARK: Dialling

    /// Keeps one session with `peer`: dials when there is none, backs off after failures.
    private func dialLoop(peer: PeerID, generation: Int) async {
        var attempt = 0
        while !Task.isCancelled {
            guard let target = core.dialTarget(peer, generation: generation) else { return }
            if core.sessionChannel(for: peer) != nil {
                await core.waitUntilNoSession(with: peer)
                attempt = 0
            } else {
                let established = await dialOnce(peer: peer, target: target)
                attempt = established ? 0 : attempt + 1
            }
            guard core.dialTarget(peer, generation: generation) != nil else { return }
            let delay = core.configuration.reconnect.delay(attempt: attempt, unit: core.jitterUnit())
            do { try await Task.sleep(for: delay) } catch { return }
        }
    }

    /// One dial; returns when the connection closed, with whether its session ever opened.
    private func dialOnce(peer: PeerID, target: MeshPeer) async -> Bool {
        let core = self.core
        let outcome = DialOutcome()
        let bootstrap = ClientBootstrap(group: group)
            .connectTimeout(.nanoseconds(nanoseconds(core.configuration.connectTimeout)))
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelOption(.socketOption(.so_keepalive), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try Self.addHandlers(
                        to: channel, role: .initiator(expecting: peer), core: core, holdsPendingSlot: false, outcome: outcome
                    )
                }
            }
        do {
            let channel = try await bootstrap.connect(host: target.host, port: target.port).get()
            try? await channel.closeFuture.get()
        } catch {
            core.logger.debug("Dial failed", metadata: ["peer": "\(peer)", "reason": "\(error)"])
            return false
        }
        return outcome.wasEstablished
    }
}
