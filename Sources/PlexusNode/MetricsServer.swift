import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import PlexusTransport
import ServiceLifecycle

/// A minimal HTTP/1.1 server beside the node:
/// - `GET /metrics`: the node's exposition (``NodeMetrics``, from its own Prometheus registry);
/// - `GET /healthz`: 200 `ok` while the process serves at all (liveness);
/// - `GET /readyz`: 200 when the node takes part in the network, 503 when not, with one line
///   saying why (``NodeMetrics/readiness(roundDeadline:now:)``);
/// everything else 404.
final class MetricsServer: Service, Sendable {
    let host: String
    let port: Int
    let metrics: NodeMetrics
    let roundDeadline: Duration
    let logger: Logger

    init(host: String, port: Int, metrics: NodeMetrics, roundDeadline: Duration, logger: Logger) {
        self.host = host
        self.port = port
        self.metrics = metrics
        self.roundDeadline = roundDeadline
        self.logger = logger
    }

    /// The metrics address could not be bound; names it, as the mesh's bind error names its own.
    struct BindError: Error, CustomStringConvertible {
        var description: String
    }

    func run() async throws {
        let metrics = self.metrics
        let channel: any Channel
        do {
            channel = try await bind(metrics)
        } catch {
            throw BindError(description: "cannot serve metrics on \(host):\(port): \(MeshError.plainReason(error))")
        }
        logger.info("Metrics listening", metadata: ["address": "\(host):\(port)"])
        // On a graceful shutdown and on cancellation (the group cancels every service when one
        // fails, e.g. the mesh cannot bind): the channel closes and run() returns.
        await withTaskCancellationOrGracefulShutdownHandler {
            try? await channel.closeFuture.get()
        } onCancelOrGracefulShutdown: {
            channel.close(promise: nil)
        }
    }

    private func bind(_ metrics: NodeMetrics) async throws -> any Channel {
        let deadline = roundDeadline
        return try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(MetricsHandler(metrics: metrics, roundDeadline: deadline))
                }
            }
            .bind(host: host, port: port).get()
    }
}

final class MetricsHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    let metrics: NodeMetrics
    let roundDeadline: Duration
    private var uri: String?

    init(metrics: NodeMetrics, roundDeadline: Duration) {
        self.metrics = metrics
        self.roundDeadline = roundDeadline
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            uri = head.method == .GET ? head.uri : nil
        case .body:
            break
        case .end:
            let status: HTTPResponseStatus
            let body: [UInt8]
            var contentType = "text/plain; charset=utf-8"
            switch uri {
            case "/metrics":
                status = .ok
                body = metrics.exposition()
                contentType = "text/plain; version=0.0.4; charset=utf-8"
            case "/healthz":
                status = .ok
                body = Array("ok\n".utf8)
            case "/readyz":
                let readiness = metrics.readiness(roundDeadline: roundDeadline)
                status = readiness.ready ? .ok : .serviceUnavailable
                body = Array(((readiness.ready ? "ready: " : "not ready: ") + readiness.reason + "\n").utf8)
            default:
                status = .notFound
                body = Array("not found; try /metrics, /healthz or /readyz\n".utf8)
            }
            var headers = HTTPHeaders()
            headers.add(name: "Content-Type", value: contentType)
            headers.add(name: "Content-Length", value: String(body.count))
            headers.add(name: "Connection", value: "close")
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))), promise: nil)
            context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: body)))), promise: nil)
            let channel = context.channel
            context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in channel.close(promise: nil) }
        }
    }
}

@available(*, unavailable)
extension MetricsHandler: Sendable {}
