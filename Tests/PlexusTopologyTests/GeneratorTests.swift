import Foundation
import PlexusCore
import PlexusTopology
import Testing

/// Generated topologies are valid for every shape and every N from 2 to 256.
///
/// To stay well under a minute in a debug build on 2 cores:
/// - every shape and every N: the link structure (degrees, connectivity by breadth-first
///   search, no duplicates or self-links);
/// - the whole file (render to TOML, parse, validate, compare) for every N ≤ 48 and then every
///   16th N up to 256, plus 255 and 256 (`full` for N ≤ 32 and 64, 128, 256: its file grows as N²);
/// - the eigen-decomposition (spectral gap > 0) for a spread of N per shape.
@Suite struct GeneratorTests {
    static let shapes: [Shape] = [.ring, .torus, .full, .star, .randomRegular(degree: 3), .randomRegular(degree: 4), .smallWorld(chordProbability: 0.2), .exponential]
    static let spectralSizes: Set<Int> = [2, 3, 4, 5, 8, 16, 17, 31, 64, 97, 128, 256]

    static func shouldRender(_ shape: Shape, _ n: Int) -> Bool {
        if shape == .full { return n <= 32 || n == 64 || n == 128 || n == 256 }
        return n <= 48 || n % 16 == 0 || n >= 255
    }

    /// Whether links over 0..<n form one connected component.
    static func isConnected(_ links: [(Int, Int)], n: Int) -> Bool {
        var adjacency = [[Int]](repeating: [], count: n)
        for (a, b) in links {
            adjacency[a].append(b)
            adjacency[b].append(a)
        }
        var seen = [Bool](repeating: false, count: n)
        var stack = [0]
        seen[0] = true
        var count = 1
        while let v = stack.popLast() {
            for w in adjacency[v] where !seen[w] {
                seen[w] = true
                count += 1
                stack.append(w)
            }
        }
        return count == n
    }

    @Test(arguments: GeneratorTests.shapes)
    func everySize(_ shape: Shape) throws {
        for n in 2...256 {
            if case .randomRegular(let d) = shape, d >= n || (n * d) % 2 == 1 {
                #expect(throws: GeneratorError.self) { try TopologyGenerator.links(shape, peers: n) }
                continue
            }
            let links = try TopologyGenerator.links(shape, peers: n, seed: UInt64(n))
            var seen: Set<[Int]> = []
            var degree = [Int](repeating: 0, count: n)
            for (a, b) in links {
                #expect(a != b && a >= 0 && b < n && a < n && b >= 0)
                #expect(seen.insert([a, b]).inserted, "\(shape) n=\(n): duplicate link \(a)-\(b)")
                degree[a] += 1
                degree[b] += 1
            }
            switch shape {
            case .ring: #expect(degree.allSatisfy { $0 == (n == 2 ? 1 : 2) }, "\(shape) n=\(n)")
            case .full: #expect(links.count == n * (n - 1) / 2)
            case .star: #expect(degree[0] == n - 1 && degree.dropFirst().allSatisfy { $0 == 1 })
            case .randomRegular(let d): #expect(degree.allSatisfy { $0 == d }, "\(shape) n=\(n): \(degree)")
            default: break
            }
            #expect(Self.isConnected(links, n: n), "\(shape) n=\(n) is disconnected")
            let spectral = Self.spectralSizes.contains(n)
            let render = Self.shouldRender(shape, n)
            guard spectral || render else { continue }
            let topology = try Build.topology(shape, peers: n, seed: UInt64(n))
            if spectral {
                let facts = GraphFacts(topology)
                #expect(facts.components.count == 1)
                let gap = try #require(facts.spectralGap)
                #expect(gap > 0 && gap <= 1 + 1e-9, "\(shape) n=\(n): gap \(gap)")
            }
            if render {
                let text = TopologyWriter.toml(topology)
                do {
                    let parsed = try Topology.parse(source: text, path: "\(shape)-\(n).toml", spectralAnalysis: false)
                    #expect(parsed.peers == topology.peers)
                    #expect(parsed.links.map(\.key) == topology.links.map(\.key))
                    #expect(parsed.planHash == topology.planHash)
                } catch {
                    Issue.record("\(shape) n=\(n) does not validate:\n\(error.description.prefix(2000))")
                }
            }
        }
    }

    @Test func seededShapesAreReproducible() throws {
        for shape in [Shape.randomRegular(degree: 5), .smallWorld(chordProbability: 0.3)] {
            let a = try TopologyGenerator.links(shape, peers: 40, seed: 7)
            let b = try TopologyGenerator.links(shape, peers: 40, seed: 7)
            let c = try TopologyGenerator.links(shape, peers: 40, seed: 8)
            #expect(a.map { [$0.0, $0.1] } == b.map { [$0.0, $0.1] })
            #expect(a.map { [$0.0, $0.1] } != c.map { [$0.0, $0.1] })
        }
    }

    @Test func shapeNames() throws {
        for text in ["ring", "torus", "full", "star", "random-regular:3", "small-world", "small-world:0.5", "exponential"] {
            #expect(try Shape(parsing: text).description == text)
        }
        for bad in ["", "rings", "random-regular:", "random-regular:0", "small-world:2", "random-regular:x"] {
            #expect(throws: GeneratorError.self) { try Shape(parsing: bad) }
        }
        #expect(throws: GeneratorError.self) { try TopologyGenerator.links(.ring, peers: 1) }
        #expect(throws: GeneratorError.self) { try TopologyGenerator.links(.randomRegular(degree: 1), peers: 4) }
    }

    @Test func peerIDs() {
        #expect(TopologyGenerator.peerIDs(count: 3).map(\.rawValue) == ["peer-00", "peer-01", "peer-02"])
        #expect(TopologyGenerator.peerIDs(count: 256).last?.rawValue == "peer-255")
    }
}
