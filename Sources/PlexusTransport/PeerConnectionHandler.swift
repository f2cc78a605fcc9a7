import NIOCore
import PlexusCore
import PlexusCrypto
import Synchronization

/// Set by a dialled connection's handler when its handshake completed; read by the dial loop to reset the backoff.
final class DialOutcome: Sendable {
    private let established = Mutex(false)
    func markEstablished() { established.withLock { $0 = true } }
    var wasEstablished: Bool { established.withLock { $0 } }
}

struct SessionNotOpenError: Error {}

/// One connection: drives the ``HandshakeStateMachine``, then seals and opens records, keeps the
/// session alive and notices when it is dead.
///
/// Thin by design: every decision is the state machine's or the ``SessionTable``'s (through
/// ``MeshCore``); this only carries out actions, owns the timers (hello, handshake, keepalive,
/// idle, drain grace) and turns errors into a reason and a close.
///
/// Inbound: frame bodies from ``FrameDecoder``. Outbound: plaintext messages (after the session
/// opened), written out as sealed frame bodies to ``FrameEncoder``; ``ConnectionCommand``s as
/// outbound user events.
final class PeerConnectionHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private enum State {
        case handshaking(HandshakeStateMachine)
        case established(PeerID, SessionCipher)
        /// Superseded by us: still opens and delivers what the peer sent before it learnt, until
        /// the peer closes (or the grace period ends). Sends nothing more.
        case draining(PeerID, SessionCipher)
        case closed
    }

    private var state: State
    private let core: MeshCore
    private let limit: FrameLimit
    private let connection: ConnectionID
    private let gauge: OutboundGauge
    private let initiatedByUs: Bool
    private let outcome: DialOutcome?
    private var handshakeTimer: Scheduled<Void>?
    private var helloTimer: Scheduled<Void>?
    private var liveness: Scheduled<Void>?
    private var lastSent = NIODeadline.now()
    private var lastReceived = NIODeadline.now()
    private var closeReason: (Reason, String)?
    private var remote = "?"

    init(
        role: HandshakeStateMachine.Role,
        core: MeshCore,
        limit: FrameLimit,
        connection: ConnectionID,
        gauge: OutboundGauge,
        outcome: DialOutcome? = nil
    ) {
        self.state = .handshaking(HandshakeStateMachine(role: role, context: core.handshakeContext()))
        self.core = core
        self.limit = limit
        self.connection = connection
        self.gauge = gauge
        if case .initiator = role { initiatedByUs = true } else { initiatedByUs = false }
        self.outcome = outcome
    }

    func channelActive(context: ChannelHandlerContext) {
        remote = context.channel.remoteAddress.map { "\($0)" } ?? "?"
        let loop = context.eventLoop.assumeIsolated()
        handshakeTimer = loop.scheduleTask(in: .nanoseconds(nanoseconds(core.configuration.handshakeTimeout))) { [self] in
            self.handshakeTimedOut(context: context, detail: "no completed handshake within \(core.configuration.handshakeTimeout)")
        }
        helloTimer = loop.scheduleTask(in: .nanoseconds(nanoseconds(core.configuration.helloTimeout))) { [self] in
            self.handshakeTimedOut(context: context, detail: "no first handshake message within \(core.configuration.helloTimeout)")
        }
        if case .handshaking(var machine) = state {
            let actions = machine.start()
            state = .handshaking(machine)
            perform(actions, context: context)
        }
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        switch state {
        case .handshaking(var machine):
            helloTimer?.cancel()
            helloTimer = nil
            let actions = machine.receive(Array(buffer.readableBytesView))
            state = .handshaking(machine)
            perform(actions, context: context)
        case .established(let peer, var cipher), .draining(let peer, var cipher):
            let draining: Bool
            if case .draining = state { draining = true } else { draining = false }
            let record: (kind: SessionCipher.Kind, payload: [UInt8])
            do {
                record = try buffer.withUnsafeReadableBytes { raw in
                    Result { () throws(SessionCipher.OpenError) in try cipher.open(raw) }
                }.get()
            } catch SessionCipher.OpenError.malformed {
                reject(peer: peer, reason: .malformedRecord, detail: "\(SessionCipher.OpenError.malformed)", context: context)
                return
            } catch {
                reject(peer: peer, reason: .decryptFailed, detail: "\(error)", context: context)
                return
            }
            state = draining ? .draining(peer, cipher) : .established(peer, cipher)
            lastReceived = .now()
            switch record.kind {
            case .message:
                core.messageReceived(connection, record.payload)
            case .select:
                guard let token = SelectToken(bytes: record.payload) else {
                    reject(peer: peer, reason: .malformedRecord, detail: "a select record of \(record.payload.count) bytes", context: context)
                    return
                }
                core.selectReceived(connection, token: token)
            case .superseded:
                core.supersededReceived(connection)
            case .keepalive:
                break
            case .topology:
                guard record.payload.count == 32 else {
                    reject(peer: peer, reason: .malformedRecord, detail: "a topology record of \(record.payload.count) bytes", context: context)
                    return
                }
                core.topologyReceived(connection, peer: peer, fingerprint: record.payload)
            case .ready:
                reject(peer: peer, reason: .malformedRecord, detail: "a second ready record", context: context)
            }
        case .closed:
            break
        }
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        guard case .established = state else {
            promise?.fail(SessionNotOpenError())
            return
        }
        let message = unwrapOutboundIn(data)
        message.withUnsafeReadableBytes { seal(.message, $0, context: context) }
        // Queued: the caller does not wait for a slow peer's socket (the gauge reports that).
        promise?.succeed()
    }

    /// Seals one record onto the session and writes it (the caller flushes).
    private func seal(_ kind: SessionCipher.Kind, _ payload: UnsafeRawBufferPointer, context: ChannelHandlerContext) {
        guard case .established(let peer, var cipher) = state else { return }
        let sealed = cipher.seal(kind, payload)
        state = .established(peer, cipher)
        let size = sealed.count + Framing.headerByteCount
        gauge.add(size)
        let written = context.eventLoop.makePromise(of: Void.self)
        written.futureResult.whenComplete { [gauge] _ in gauge.remove(size) }
        lastSent = .now()
        context.write(wrapOutboundOut(ByteBuffer(bytes: sealed)), promise: written)
    }

    private func sealAndFlush(_ kind: SessionCipher.Kind, _ payload: [UInt8], context: ChannelHandlerContext) {
        payload.withUnsafeBytes { seal(kind, $0, context: context) }
        context.flush()
    }

    func triggerUserOutboundEvent(context: ChannelHandlerContext, event: Any, promise: EventLoopPromise<Void>?) {
        guard let command = event as? ConnectionCommand else {
            context.triggerUserOutboundEvent(event, promise: promise)
            return
        }
        promise?.succeed()
        switch command {
        case .select(let token):
            sealAndFlush(.select, token.encoded, context: context)
        case .supersede:
            guard case .established(let peer, let cipher) = state else { return }
            sealAndFlush(.superseded, [], context: context)
            state = .draining(peer, cipher)
            let channel = context.channel
            let grace = TimeAmount.nanoseconds(nanoseconds(core.configuration.handshakeTimeout))
            context.eventLoop.scheduleTask(in: grace) { channel.close(promise: nil) }
        case .close(let reason, let detail):
            closeReason = closeReason ?? (reason, detail)
            state = .closed
            context.close(promise: nil)
        case .announceTopology(let fingerprint):
            guard case .established = state else { return }
            sealAndFlush(.topology, fingerprint, context: context)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        let tooLarge = error is FrameTooLargeError || error is ByteToMessageDecoderError.PayloadTooLargeError
        switch state {
        case .handshaking(let machine):
            state = .closed
            cancelTimers()
            core.handshakeFailed(
                HandshakeFailure(
                    reason: tooLarge ? .frameTooLarge : .malformedHandshake, claimedPeer: machine.claimedPeer, detail: "\(error)"
                ),
                remote: remote, connection: connection
            )
            context.close(promise: nil)
        case .established(let peer, _), .draining(let peer, _):
            if tooLarge {
                reject(peer: peer, reason: .frameTooLarge, detail: "\(error)", context: context)
            } else {
                closeReason = closeReason ?? (.connectionError, "\(error)")
                state = .closed
                context.close(promise: nil)
            }
        case .closed:
            break
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        cancelAllTimers()
    }

    func channelInactive(context: ChannelHandlerContext) {
        cancelAllTimers()
        if case .handshaking(let machine) = state {
            core.handshakeFailed(
                HandshakeFailure(
                    reason: .closedDuringHandshake, claimedPeer: machine.claimedPeer,
                    detail: "the connection closed during the handshake"
                ),
                remote: remote, connection: connection
            )
        }
        state = .closed
        let (reason, detail) = closeReason ?? (.closedByPeer, "the connection closed")
        core.connectionClosed(connection, reason: reason, detail: detail)
        context.fireChannelInactive()
    }

    // MARK: Carrying out actions

    private func perform(_ actions: [HandshakeStateMachine.Action], context: ChannelHandlerContext) {
        var lastWrite: EventLoopFuture<Void>?
        for action in actions {
            switch action {
            case .send(let bytes):
                lastWrite = context.writeAndFlush(wrapOutboundOut(ByteBuffer(bytes: bytes)))
            case .established(let peer, let cipher):
                cancelTimers()
                limit.maximum = core.configuration.maximumFrameSize
                state = .established(peer, cipher)
                lastReceived = .now()
                lastSent = .now()
                startLiveness(context: context)
                if core.established(connection, peer: peer, dialledByMe: initiatedByUs) {
                    outcome?.markEstablished()
                    if let fingerprint = core.topologyFingerprint(), case .established = state {
                        sealAndFlush(.topology, fingerprint, context: context)
                    }
                } else if case .established = state {
                    closeReason = (core.isStopping() ? .stopping : .removed, "stopping, or the peer was removed meanwhile")
                    state = .closed
                    context.close(promise: nil)
                }
            case .fail(let failure):
                cancelTimers()
                state = .closed
                core.handshakeFailed(failure, remote: remote, connection: connection)
                // Let a refusal reach the peer before closing.
                let channel = context.channel
                if let lastWrite {
                    lastWrite.whenComplete { _ in channel.close(promise: nil) }
                } else {
                    context.close(promise: nil)
                }
            }
        }
    }

    /// Every half keepalive interval: a keepalive if nothing was sent for the interval, and the
    /// idle check (suspended while the mesh pauses reading for a slow consumer).
    private func startLiveness(context: ChannelHandlerContext) {
        let period = TimeAmount.nanoseconds(max(1, nanoseconds(core.configuration.keepaliveInterval) / 2))
        liveness = context.eventLoop.assumeIsolated().scheduleTask(in: period) { [self] in
            self.checkLiveness(context: context)
        }
    }

    private func checkLiveness(context: ChannelHandlerContext) {
        let now = NIODeadline.now()
        if gauge.queued > core.configuration.outboundHardLimit {
            closeReason = (.outboundOverflow, "\(gauge.queued) bytes queued, over the limit of \(core.configuration.outboundHardLimit)")
            state = .closed
            context.close(promise: nil)
            return
        }
        // Only onto an empty queue: queued bytes reach the peer before a keepalive would, and a
        // peer that does not read must not make keepalives pile up.
        if case .established = state, gauge.queued == 0,
            now - lastSent >= .nanoseconds(nanoseconds(core.configuration.keepaliveInterval))
        {
            sealAndFlush(.keepalive, [], context: context)
        }
        if core.isReadingPaused { lastReceived = now }
        switch state {
        case .established, .draining:
            if now - lastReceived >= .nanoseconds(nanoseconds(core.configuration.idleTimeout)) {
                closeReason = (.idleTimeout, "nothing received for \(core.configuration.idleTimeout)")
                state = .closed
                context.close(promise: nil)
            } else {
                startLiveness(context: context)
            }
        case .handshaking, .closed:
            break
        }
    }

    private func reject(peer: PeerID, reason: Reason, detail: String, context: ChannelHandlerContext) {
        core.frameRejected(peer: peer, reason: reason, detail: detail)
        closeReason = (reason, detail)
        state = .closed
        context.close(promise: nil)
    }

    private func handshakeTimedOut(context: ChannelHandlerContext, detail: String) {
        guard case .handshaking(let machine) = state else { return }
        cancelTimers()
        state = .closed
        core.handshakeFailed(
            HandshakeFailure(reason: .handshakeTimeout, claimedPeer: machine.claimedPeer, detail: detail),
            remote: remote, connection: connection
        )
        context.close(promise: nil)
    }

    /// Cancels the handshake timers (hello, deadline).
    private func cancelTimers() {
        handshakeTimer?.cancel()
        handshakeTimer = nil
        helloTimer?.cancel()
        helloTimer = nil
    }

    private func cancelAllTimers() {
        cancelTimers()
        liveness?.cancel()
        liveness = nil
    }
}

@available(*, unavailable)
extension PeerConnectionHandler: Sendable {}

/// `duration` in nanoseconds, saturating (a `disconnect` backoff of years must not trap).
func nanoseconds(_ duration: Duration) -> Int64 {
    let (seconds, attoseconds) = duration.components
    let (scaled, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
    guard !overflow else { return seconds < 0 ? Int64.min / 2 : Int64.max / 2 }
    let (total, overflowAgain) = scaled.addingReportingOverflow(attoseconds / 1_000_000_000)
    guard !overflowAgain else { return seconds < 0 ? Int64.min / 2 : Int64.max / 2 }
    return total
}
