import PlexusCore
import PlexusLog
import Testing

@Suite struct JSONTests {
    @Test func serializationIsCompactOrderedAndEscaped() {
        let value = JSONValue.object([
            ("z", .integer(1)), ("a", .number(0.1)), ("s", .string("tab\t\"quote\"\n\u{1}")),
            ("n", .number(.nan)), ("whole", .number(3)), ("list", .array([.bool(true), .null])),
        ])
        #expect(value.serialized() == #"{"z":1,"a":0.1,"s":"tab\t\"quote\"\n\u0001","n":null,"whole":3,"list":[true,null]}"#)
    }

    @Test func parseRoundTrips() throws {
        let text = #"{"a":[1,2.5,-3e-2,"x\u00e9\n"],"b":{"c":null,"d":false},"e":""}"#
        let value = try JSONParser.parse(text)
        #expect(value["a"] == .array([.integer(1), .number(2.5), .number(-0.03), .string("xé\n")]))
        #expect(value["b"]?["d"] == .bool(false))
        #expect(try JSONParser.parse(value.serialized()) == value)
    }

    @Test(arguments: [
        "", "{", "[1,", #"{"a" 1}"#, #"{"a":1,}"#, "[1 2]", #""unterminated"#, "tru", "01x", "1e999",
        #"{"a":1} trailing"#, "\"\u{1}\"", String(repeating: "[", count: 40) + String(repeating: "]", count: 40),
        #"{"a":"\q"}"#, #""\u12""#,
    ])
    func malformedInputIsAnErrorNotACrash(text: String) {
        #expect(throws: JSONParser.Error.self) { try JSONParser.parse(text) }
    }

    @Test func seededGarbageNeverCrashes() {
        var rng = SplitMix64(seed: 31)
        let seed = Array(#"{"type":"round","peer":"a","round":3,"loss":0.25,"rejected":{"gap":1},"x":[1,2,{"y":null}]}"#.utf8)
        var parsed = 0
        for _ in 0..<5000 {
            var bytes = seed
            for _ in 0..<Int.random(in: 1...5, using: &rng) {
                let i = Int.random(in: 0..<bytes.count, using: &rng)
                switch Int.random(in: 0..<3, using: &rng) {
                case 0: bytes[i] = UInt8.random(in: 0...255, using: &rng)
                case 1: bytes.remove(at: i)
                default: bytes.removeSubrange(i...)
                }
                if bytes.isEmpty { break }
            }
            if (try? JSONParser.parse(bytes)) != nil { parsed += 1 }
        }
        #expect(parsed < 5000)
    }
}
