import NIOCore
import PlexusCore
import PlexusCrypto
import Synchronization

/// Set by a dialled connection's handler when its session opened; read by the dial loop to reset the backoff.
final class DialOutcome: Sendable {
    private let established = Mutex(false)
    func markEstablished() { established.withLock { $0 = true } }
    var wasEstablished: Bool { established.withLock { $0 } }
}

struct SessionNotOpenError: Error {}

/// Outbound user event: this established connection lost the duplicate tie-break; tell the peer
/// (a sealed `superseded` record) and close.
struct SupersedeEvent {}

/// Outbound user event: close with this reason (e.g. the peer was removed from the topology).
struct CloseWithReasonEvent {
    var reason: String
}

/// One connection: drives the ``HandshakeStateMachine``, then seals and opens records.
///
/// Thin by design: every decision is the state machine's or ``MeshCore``'s; this only carries
/// out actions, owns the handshake timer and turns errors into a logged reason and a close.
///
/// Inbound: frame bodies from ``FrameDecoder``. Outbound: plaintext messages (after the session
/// opened), written out as sealed frame bodies to ``FrameEncoder``.
final class PeerConnectionHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private enum State {
        case handshaking(HandshakeStateMachine)
        case established(PeerID, SessionCipher)
        /// Lost the duplicate tie-break and said so: still opens and delivers what the peer sent
        /// before it learnt, until the peer closes (or the grace period ends). Sends nothing more.
        case draining(PeerID, SessionCipher)
        case closed
    }

    private var state: State
    private let core: MeshCore
    private let limit: FrameLimit
    private let initiatedByUs: Bool
    private let outcome: DialOutcome?
    private var holdsPendingSlot: Bool
    private var timeout: Scheduled<Void>?
    /// The authenticated peer, kept after close to report the session's end.
    private var peer: PeerID?
    private var closeReason: String?
    /// The peer said it keeps another connection with us.
    private var superseded = false
    private var remote = "?"

    init(
        role: HandshakeStateMachine.Role,
        core: MeshCore,
        limit: FrameLimit,
        holdsPendingSlot: Bool,
        outcome: DialOutcome? = nil
    ) {
        self.state = .handshaking(HandshakeStateMachine(role: role, context: core.handshakeContext()))
        self.core = core
        self.limit = limit
        if case .initiator = role { initiatedByUs = true } else { initiatedByUs = false }
        self.holdsPendingSlot = holdsPendingSlot
        self.outcome = outcome
    }

    func channelActive(context: ChannelHandlerContext) {
        remote = context.channel.remoteAddress.map { "\($0)" } ?? "?"
        guard core.register(context.channel) else {
            state = .closed
            releasePendingSlot()
            context.close(promise: nil)
            return
        }
        let timeoutAmount = TimeAmount.nanoseconds(nanoseconds(core.configuration.handshakeTimeout))
        timeout = context.eventLoop.assumeIsolated().scheduleTask(in: timeoutAmount) { [self] in
            self.handshakeTimedOut(context: context)
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
            let actions = machine.receive(Array(buffer.readableBytesView))
            state = .handshaking(machine)
            perform(actions, context: context)
        case .established(let peer, var cipher), .draining(let peer, var cipher):
            let draining: Bool
            if case .draining = state { draining = true } else { draining = false }
            do {
                let record = try buffer.withUnsafeReadableBytes { raw in
                    Result { () throws(SessionCipher.OpenError) in try cipher.open(raw) }
                }.get()
                state = draining ? .draining(peer, cipher) : .established(peer, cipher)
                switch record.kind {
                case .message:
                    core.deliver(record.payload, from: peer, channel: context.channel)
                case .superseded:
                    superseded = true
                    closeReason = "superseded"
                    state = .closed
                    context.close(promise: nil)
                case .ready:
                    reject(peer: peer, reason: "malformed-record", detail: "a second ready record", context: context)
                }
            } catch SessionCipher.OpenError.malformed {
                reject(peer: peer, reason: "malformed-record", detail: "\(SessionCipher.OpenError.malformed)", context: context)
            } catch {
                reject(peer: peer, reason: "decrypt-failed", detail: "\(error)", context: context)
            }
        case .closed:
            break
        }
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        guard case .established(let peer, var cipher) = state else {
            promise?.fail(SessionNotOpenError())
            return
        }
        let sealed = unwrapOutboundIn(data).withUnsafeReadableBytes { cipher.seal(.message, $0) }
        state = .established(peer, cipher)
        context.write(wrapOutboundOut(ByteBuffer(bytes: sealed)), promise: promise)
    }

    func triggerUserOutboundEvent(context: ChannelHandlerContext, event: Any, promise: EventLoopPromise<Void>?) {
        if let close = event as? CloseWithReasonEvent {
            closeReason = close.reason
            promise?.succeed()
            context.close(promise: nil)
            return
        }
        guard event is SupersedeEvent else {
            context.triggerUserOutboundEvent(event, promise: promise)
            return
        }
        promise?.succeed()
        supersede(context: context)
    }

    /// Seals a `superseded` record, then closes.
    private func supersede(context: ChannelHandlerContext) {
        guard case .established(let peer, var cipher) = state else {
            context.close(promise: nil)
            return
        }
        let record = cipher.seal(.superseded, [])
        state = .draining(peer, cipher)
        self.peer = peer
        closeReason = "duplicate"
        context.writeAndFlush(wrapOutboundOut(ByteBuffer(bytes: record)), promise: nil)
        let channel = context.channel
        let grace = TimeAmount.nanoseconds(nanoseconds(core.configuration.handshakeTimeout))
        context.eventLoop.scheduleTask(in: grace) { channel.close(promise: nil) }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        let tooLarge = error is FrameTooLargeError || error is ByteToMessageDecoderError.PayloadTooLargeError
        switch state {
        case .handshaking(let machine):
            state = .closed
            cancelTimeout()
            core.handshakeFailed(
                HandshakeFailure(
                    reason: tooLarge ? .frameTooLarge : .malformed, claimedPeer: machine.claimedPeer, detail: "\(error)"
                ),
                remote: remote
            )
            context.close(promise: nil)
        case .established(let peer, _), .draining(let peer, _):
            if tooLarge {
                reject(peer: peer, reason: "frame-too-large", detail: "\(error)", context: context)
            } else {
                closeReason = closeReason ?? "connection error: \(error)"
                state = .closed
                context.close(promise: nil)
            }
        case .closed:
            break
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        cancelTimeout()
        releasePendingSlot()
    }

    func channelInactive(context: ChannelHandlerContext) {
        cancelTimeout()
        releasePendingSlot()
        if case .handshaking(let machine) = state {
            core.handshakeFailed(
                HandshakeFailure(reason: .closed, claimedPeer: machine.claimedPeer, detail: "the connection closed during the handshake"),
                remote: remote
            )
        }
        state = .closed
        if let peer {
            core.connectionClosed(peer: peer, channel: context.channel)
            core.sessionEnded(
                peer: peer, channel: context.channel, reason: closeReason ?? "connection closed", superseded: superseded
            )
        }
        core.unregister(context.channel)
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
                cancelTimeout()
                releasePendingSlot()
                limit.maximum = core.configuration.maximumFrameSize
                state = .established(peer, cipher)
                self.peer = peer
                switch core.established(peer: peer, channel: context.channel, initiatedByUs: initiatedByUs) {
                case .keep:
                    outcome?.markEstablished()
                case .duplicate:
                    supersede(context: context)
                case .refuse:
                    closeReason = "stopping or peer removed"
                    state = .closed
                    context.close(promise: nil)
                }
            case .fail(let failure):
                cancelTimeout()
                state = .closed
                core.handshakeFailed(failure, remote: remote)
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

    private func reject(peer: PeerID, reason: String, detail: String, context: ChannelHandlerContext) {
        core.frameRejected(peer: peer, reason: reason, detail: detail)
        closeReason = reason
        state = .closed
        context.close(promise: nil)
    }

    private func handshakeTimedOut(context: ChannelHandlerContext) {
        timeout = nil
        guard case .handshaking(let machine) = state else { return }
        state = .closed
        core.handshakeFailed(
            HandshakeFailure(
                reason: .timeout, claimedPeer: machine.claimedPeer,
                detail: "no completed handshake within \(core.configuration.handshakeTimeout)"
            ),
            remote: remote
        )
        context.close(promise: nil)
    }

    private func cancelTimeout() {
        timeout?.cancel()
        timeout = nil
    }

    private func releasePendingSlot() {
        if holdsPendingSlot {
            holdsPendingSlot = false
            core.releasePending()
        }
    }
}

@available(*, unavailable)
extension PeerConnectionHandler: Sendable {}

func nanoseconds(_ duration: Duration) -> Int64 {
    let (seconds, attoseconds) = duration.components
    return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
}
