import PlexusCrypto
import Testing

@Suite struct NoiseGeneratorTests {
    /// The deterministic generator is the ChaCha20 (IETF) keystream: with a zero key and block 0
    /// (a zero nonce) its first word is RFC 8439's test vector A.1 #1 (76 b8 e0 ad a0 f1 3d 90 …).
    @Test func deterministicGeneratorIsTheChaCha20Keystream() {
        let generator = DeterministicNoiseGenerator(key: [UInt8](repeating: 0, count: 32))
        #expect(generator.next() == 0x903d_f1a0_ade0_b876)
        #expect(generator.next() == 0x28bd_8653_e56a_5d40)
    }

    @Test func streamsAreReproducibleAndSeparate() {
        func words(_ g: DeterministicNoiseGenerator, _ n: Int = 1200) -> [UInt64] { (0..<n).map { _ in g.next() } }
        let a = words(DeterministicNoiseGenerator(label: "plexus.dp.noise|42|hospital-a"))
        let b = words(DeterministicNoiseGenerator(label: "plexus.dp.noise|42|hospital-a"))
        let c = words(DeterministicNoiseGenerator(label: "plexus.dp.noise|42|hospital-b"))
        #expect(a == b, "one label, one stream (past the 4 KiB refill at word 512)")
        #expect(Set(a).isDisjoint(with: c), "another peer, another stream")
        #expect(Set(a).count == a.count, "no word repeats across refills")
    }

    @Test func systemGeneratorDoesNotRepeat() {
        let g = SystemNoiseGenerator(), h = SystemNoiseGenerator()
        let a = (0..<2000).map { _ in g.next() }
        let b = (0..<2000).map { _ in h.next() }
        #expect(Set(a).count == 2000 && Set(a).isDisjoint(with: b))
        // Roughly half the bits set: not a zeroed buffer handed out.
        let ones = a.reduce(0) { $0 + $1.nonzeroBitCount }
        #expect(abs(Double(ones) / Double(64 * 2000) - 0.5) < 0.01)
    }
}
