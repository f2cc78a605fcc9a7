import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import ServiceLifecycle
import Synchronization

/// The node's numbers, for Prometheus: updated by the driver, rendered on each scrape.
final class NodeMetrics: Sendable {
    struct Values {
        var round = 0
        var loss = Double.nan
        var metric: (name: String, value: Double)?
        var consensusDistance = Double.nan
        var bytesSent = 0
        var bytesReceived = 0
        var openSessions = 0
        var rejected: [String: Int] = [:]
        var handshakeFailures: [String: Int] = [:]
        var finished = false
        /// Per neighbour: whether its announced topology file is ours.
        var topologyMatches: [String: Bool] = [:]
    }

    private let values = Mutex(Values())
    let peer: String

    init(peer: String) { self.peer = peer }

    func update(_ body: (inout Values) -> Void) { values.withLock { body(&$0) } }

    /// The Prometheus text exposition format (version 0.0.4).
    func render() -> String {
        let v = values.withLock { $0 }
        let label = "peer=\"\(peer)\""
        var out = ""
        func metric(_ name: String, _ type: String, _ help: String, _ samples: [(String, Double)]) {
            out += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
            for (labels, value) in samples {
                let text = value.isNaN ? "NaN" : value.isInfinite ? (value > 0 ? "+Inf" : "-Inf") : "\(value)"
                out += "\(name){\(label)\(labels.isEmpty ? "" : "," + labels)} \(text)\n"
            }
        }
        metric("plexus_round", "gauge", "The last completed round.", [("", Double(v.round))])
        metric("plexus_training_loss", "gauge", "Training loss of the last round.", [("", v.loss)])
        if let m = v.metric {
            metric("plexus_validation_metric", "gauge", "The model's metric on the test set after the last round.", [("metric=\"\(m.name)\"", m.value)])
        }
        metric("plexus_consensus_distance", "gauge", "‖x − mean of the neighbours' public copies‖ after the last round.", [("", v.consensusDistance)])
        metric("plexus_bytes_sent_total", "counter", "Message bytes sent to neighbours.", [("", Double(v.bytesSent))])
        metric("plexus_bytes_received_total", "counter", "Message bytes received from neighbours.", [("", Double(v.bytesReceived))])
        metric("plexus_open_sessions", "gauge", "Authenticated sessions open now.", [("", Double(v.openSessions))])
        metric("plexus_rejected_messages_total", "counter", "Messages dropped, by reason.", v.rejected.sorted { $0.key < $1.key }.map { ("reason=\"\($0.key)\"", Double($0.value)) })
        metric("plexus_handshake_failures_total", "counter", "Failed handshakes, by reason.", v.handshakeFailures.sorted { $0.key < $1.key }.map { ("reason=\"\($0.key)\"", Double($0.value)) })
        metric("plexus_neighbour_topology_match", "gauge", "1 if the neighbour announced the same topology file as this node's, 0 if another.", v.topologyMatches.sorted { $0.key < $1.key }.map { ("neighbour=\"\($0.key)\"", $0.value ? 1 : 0) })
        metric("plexus_finished", "gauge", "1 once the plan's last round is done.", [("", v.finished ? 1 : 0)])
        return out
    }
}

/// A minimal HTTP/1.1 server: `GET /metrics` returns the exposition, everything else 404.
final class MetricsServer: Service, Sendable {
    let host: String
    let port: Int
    let metrics: NodeMetrics
    let logger: Logger

    init(host: String, port: Int, metrics: NodeMetrics, logger: Logger) {
        self.host = host
        self.port = port
        self.metrics = metrics
        self.logger = logger
    }

    func run() async throws {
        let metrics = self.metrics
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(MetricsHandler(metrics: metrics))
                }
            }
            .bind(host: host, port: port).get()
        logger.info("Metrics listening", metadata: ["address": "\(host):\(port)"])
        await withGracefulShutdownHandler {
            try? await channel.closeFuture.get()
        } onGracefulShutdown: {
            channel.close(promise: nil)
        }
    }
}

final class MetricsHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    let metrics: NodeMetrics
    private var uri: String?

    init(metrics: NodeMetrics) { self.metrics = metrics }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            uri = head.method == .GET ? head.uri : nil
        case .body:
            break
        case .end:
            let found = uri == "/metrics"
            let body = found ? metrics.render() : "not found; try /metrics\n"
            var headers = HTTPHeaders()
            headers.add(name: "Content-Type", value: found ? "text/plain; version=0.0.4; charset=utf-8" : "text/plain")
            headers.add(name: "Content-Length", value: String(body.utf8.count))
            headers.add(name: "Connection", value: "close")
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: found ? .ok : .notFound, headers: headers))), promise: nil)
            context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(string: body)))), promise: nil)
            let channel = context.channel
            context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in channel.close(promise: nil) }
        }
    }
}

@available(*, unavailable)
extension MetricsHandler: Sendable {}
