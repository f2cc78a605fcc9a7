public import Logging
public import PlexusCore
public import PlexusCrypto
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
        self.group = MultiThreadedEventLoopGroup.singleton
        self.core = MeshCore(configuration: configuration, logger: logger, group: group)
    }

    /// Everything that happens on the mesh. Finishes when ``run()`` returns. Iterate it once:
    /// while more than ``MeshConfiguration/inboundEventWatermark`` events wait in it, the mesh
    /// stops reading from its sessions.
    public var events: MeshEvents { MeshEvents(base: core.events, core: core) }

    /// The port the mesh listens on, once bound (waits until then; 0 if the mesh stopped unbound).
    public var boundPort: Int {
        get async { await core.boundPort() }
    }

    public var counters: MeshCounters {
        get async { core.counters }
    }

    /// Seals `message` onto the session with `peer`.
    ///
    /// While the session moves to another connection (a simultaneous dial resolving) a send waits
    /// for the new one, bounded by the handover and drain timers. The message is queued, not
    /// written, when this returns: it never waits for a slow peer.
    ///
    /// - Returns: ``SendResult/sent``; ``SendResult/peerNotReading`` (queued, but the peer's
    ///   outbound queue is above ``MeshConfiguration/outboundHighWatermark``);
    ///   ``SendResult/overflowed`` (past ``MeshConfiguration/outboundHardLimit``: the session was
    ///   closed with ``PlexusCore/Reason/outboundOverflow``); ``SendResult/noSession`` or
    ///   ``SendResult/tooLarge`` (nothing was sent).
    @discardableResult
    public func send(_ message: [UInt8], to peer: PeerID) async -> SendResult {
        let configuration = core.configuration
        guard message.count <= configuration.maximumMessageSize else { return .tooLarge }
        // A write can lose the race with a handover (the connection was just superseded): the
        // handler then refuses it without sealing anything, and it is retried on the replacement.
        var tried: ConnectionID?
        for _ in 0..<3 {
            guard let target = await core.sendTarget(for: peer), target.connection != tried else { return .noSession }
            if target.gauge.queued > configuration.outboundHardLimit {
                target.channel.triggerUserOutboundEvent(
                    ConnectionCommand.close(
                        .outboundOverflow, "\(target.gauge.queued) bytes queued, over the limit of \(configuration.outboundHardLimit)"
                    ),
                    promise: nil
                )
                return .overflowed
            }
            do {
                try await target.channel.writeAndFlush(ByteBuffer(bytes: message)).get()
                core.messageSent()
                return target.gauge.queued > configuration.outboundHighWatermark ? .peerNotReading : .sent
            } catch {
                tried = target.connection
            }
        }
        return .noSession
    }

    /// Closes the session with `peer` (reported as ``MeshEvent/sessionClosed(_:reason:detail:)``
    /// with `reason`), and neither accepts nor dials it again before `backoff` has elapsed; the
    /// peer's handshakes meanwhile are refused as from a stranger. The gossip layer calls it when
    /// a neighbour exceeds its budget of rejected messages.
    public func disconnect(_ peer: PeerID, reason: Reason, backoff: Duration) async {
        core.disconnect(peer, reason: reason, detail: "disconnected for \(backoff)", backoff: backoff)
    }

    /// Replaces the allowed neighbours: new ones are dialled, removed ones' sessions are closed,
    /// changed keys are enforced from the next handshake on.
    public func updatePeers(_ peers: [PeerID: MeshPeer]) async {
        core.updatePeers(peers)
    }

    /// This peer's key was rotated: the next handshakes use `key`; open sessions carry on until
    /// they close.
    public func updateIdentity(_ key: Ed25519.PrivateKey) async {
        core.updateIdentity(key)
    }

    /// This peer's topology file changed: its new fingerprint (32 bytes) goes to every neighbour
    /// now, on the open sessions, and first on every later one.
    public func updateTopologyFingerprint(_ fingerprint: [UInt8]) async {
        precondition(fingerprint.count == 32, "the topology fingerprint is 32 bytes")
        core.updateTopologyFingerprint(fingerprint)
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
            // One read per readiness event, so pausing reads for a slow consumer takes effect
            // after at most one read's worth of frames.
            .childChannelOption(.maxMessagesPerRead, value: 1)
            .childChannelInitializer { channel in
                let address = channel.remoteAddress?.ipAddress ?? "?"
                guard let id = core.admitInbound(channel, address: address) else {
                    return channel.close()
                }
                return channel.eventLoop.makeCompletedFuture {
                    try Self.addHandlers(to: channel, role: .responder, core: core, connection: id, outcome: nil)
                }
            }
    }

    private static func addHandlers(
        to channel: any Channel,
        role: HandshakeStateMachine.Role,
        core: MeshCore,
        connection: ConnectionID,
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
            PeerConnectionHandler(
                role: role, core: core, limit: limit, connection: connection, gauge: core.gauge(connection), outcome: outcome
            )
        )
    }

    // MARK: Dialling

    /// Keeps one session with `peer`: dials when there is none, backs off after failures, and
    /// leaves a peer alone while it is disconnected.
    private func dialLoop(peer: PeerID, generation: Int) async {
        var attempt = 0
        while !Task.isCancelled {
            guard let target = core.dialTarget(peer, generation: generation) else { return }
            if core.needsNoDial(peer) {
                await core.waitUntilDialNeeded(peer)
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

    /// One dial; returns when the connection closed, with whether its handshake completed.
    private func dialOnce(peer: PeerID, target: MeshPeer) async -> Bool {
        let core = self.core
        let outcome = DialOutcome()
        let bootstrap = ClientBootstrap(group: group)
            .connectTimeout(.nanoseconds(nanoseconds(core.configuration.connectTimeout)))
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelOption(.socketOption(.so_keepalive), value: 1)
            .channelOption(.maxMessagesPerRead, value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    guard let id = core.registerOutbound(channel) else { throw SessionNotOpenError() }
                    try Self.addHandlers(
                        to: channel, role: .initiator(expecting: peer), core: core, connection: id, outcome: outcome
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

/// The mesh's events as an async sequence; taking one tells the mesh it was consumed (the
/// inbound back-pressure counts what is still waiting).
public struct MeshEvents: AsyncSequence, Sendable {
    public typealias Element = MeshEvent
    let base: AsyncStream<MeshEvent>
    let core: MeshCore

    public struct AsyncIterator: AsyncIteratorProtocol {
        var base: AsyncStream<MeshEvent>.AsyncIterator
        let core: MeshCore

        public mutating func next() async -> MeshEvent? {
            let event = await base.next()
            if event != nil { core.eventConsumed() }
            return event
        }
    }

    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(base: base.makeAsyncIterator(), core: core)
    }
}
