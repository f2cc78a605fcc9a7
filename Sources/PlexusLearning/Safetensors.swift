import Foundation

/// The safetensors file format (https://github.com/huggingface/safetensors) for a parameter vector
/// with a ``ParameterLayout``: an 8-byte little-endian header length N, N bytes of JSON naming each
/// tensor's dtype (`F32`), shape and byte range, padded with spaces to a multiple of 8, then the
/// little-endian Float32 data in layout order.
///
/// ```
/// +----------------+----------------------------------+-------------------------------+
/// | N (u64 LE)     | {"hidden1.weight":{"dtype":"F32", | data: count × 4 bytes, in     |
/// |                |  "shape":[32,9],"data_offsets":   | layout order, little-endian   |
/// |                |  [0,1152]},…,"__metadata__":{…}}  |                               |
/// +----------------+----------------------------------+-------------------------------+
/// ```
public enum Safetensors {
    public struct FormatError: Error, Sendable, Hashable, CustomStringConvertible {
        public var description: String
    }

    /// Encodes `parameters` laid out by `layout`, with optional string metadata.
    public static func encode(_ parameters: [Float], layout: ParameterLayout, metadata: [String: String] = [:]) -> [UInt8] {
        precondition(parameters.count == layout.count, "expected \(layout.count) parameters, got \(parameters.count)")
        var entries: [String] = []
        if !metadata.isEmpty {
            let fields = metadata.keys.sorted().map { "\(quote($0)):\(quote(metadata[$0]!))" }
            entries.append("\"__metadata__\":{\(fields.joined(separator: ","))}")
        }
        for t in layout.tensors {
            let shape = t.shape.map(String.init).joined(separator: ",")
            entries.append(
                "\(quote(t.name)):{\"dtype\":\"F32\",\"shape\":[\(shape)],\"data_offsets\":[\(t.offset * 4),\((t.offset + t.count) * 4)]}")
        }
        var header = Array("{\(entries.joined(separator: ","))}".utf8)
        while header.count % 8 != 0 { header.append(UInt8(ascii: " ")) }
        var out: [UInt8] = []
        out.reserveCapacity(8 + header.count + parameters.count * 4)
        withUnsafeBytes(of: UInt64(header.count).littleEndian) { out.append(contentsOf: $0) }
        out.append(contentsOf: header)
        for p in parameters { withUnsafeBytes(of: p.bitPattern.littleEndian) { out.append(contentsOf: $0) } }
        return out
    }

    /// Decodes a file written for `layout`: every tensor of the layout must be present as F32 with
    /// its shape; the byte ranges must lie inside the data; every value must be finite. Returns the
    /// parameter vector and metadata.
    public static func decode(_ bytes: [UInt8], layout: ParameterLayout) throws(FormatError) -> (parameters: [Float], metadata: [String: String]) {
        guard bytes.count >= 8 else { throw FormatError(description: "shorter than the 8-byte header length") }
        var n: UInt64 = 0
        for i in 0..<8 { n |= UInt64(bytes[i]) << (8 * UInt64(i)) }
        guard n <= UInt64(bytes.count - 8), n <= 100_000_000 else {
            throw FormatError(description: "header length \(n) exceeds the file (\(bytes.count) bytes)")
        }
        let dataStart = 8 + Int(n)
        let json: Any
        do {
            json = try JSONSerialization.jsonObject(with: Data(bytes[8..<dataStart]))
        } catch {
            throw FormatError(description: "header is not JSON: \(error.localizedDescription)")
        }
        guard let header = json as? [String: Any] else { throw FormatError(description: "header is not a JSON object") }
        var metadata: [String: String] = [:]
        if let m = header["__metadata__"] as? [String: Any] {
            for (k, v) in m { metadata[k] = v as? String ?? "\(v)" }
        }
        var parameters = [Float](repeating: 0, count: layout.count)
        let dataCount = bytes.count - dataStart
        for t in layout.tensors {
            guard let entry = header[t.name] as? [String: Any] else { throw FormatError(description: "tensor '\(t.name)' is missing") }
            guard entry["dtype"] as? String == "F32" else { throw FormatError(description: "tensor '\(t.name)' is not F32") }
            guard let shape = entry["shape"] as? [Int], shape == t.shape else {
                throw FormatError(description: "tensor '\(t.name)' has shape \(entry["shape"] ?? "?"), expected \(t.shape)")
            }
            // offsets[1] >= offsets[0] first: a hostile negative end made the subtraction overflow.
            guard let offsets = entry["data_offsets"] as? [Int], offsets.count == 2, offsets[0] >= 0,
                offsets[1] >= offsets[0], offsets[1] - offsets[0] == t.count * 4, offsets[1] <= dataCount
            else {
                throw FormatError(description: "tensor '\(t.name)' has bad data_offsets \(entry["data_offsets"] ?? "?")")
            }
            for i in 0..<t.count {
                let base = dataStart + offsets[0] + 4 * i
                var bits: UInt32 = 0
                for b in 0..<4 { bits |= UInt32(bytes[base + b]) << (8 * UInt32(b)) }
                let value = Float(bitPattern: bits)
                guard value.isFinite else { throw FormatError(description: "tensor '\(t.name)' holds a NaN or infinite value at index \(i)") }
                parameters[t.offset + i] = value
            }
        }
        return (parameters, metadata)
    }

    /// The `__metadata__` of a file, strictly: the header must be a JSON object within the file
    /// and every metadata value a string. Tensors are not read.
    public static func metadata(_ bytes: [UInt8]) throws(FormatError) -> [String: String] {
        guard bytes.count >= 8 else { throw FormatError(description: "shorter than the 8-byte header length") }
        var n: UInt64 = 0
        for i in 0..<8 { n |= UInt64(bytes[i]) << (8 * UInt64(i)) }
        guard n <= UInt64(bytes.count - 8), n <= 100_000_000 else {
            throw FormatError(description: "header length \(n) exceeds the file (\(bytes.count) bytes)")
        }
        let json: Any
        do {
            json = try JSONSerialization.jsonObject(with: Data(bytes[8..<(8 + Int(n))]))
        } catch {
            throw FormatError(description: "header is not JSON: \(error.localizedDescription)")
        }
        guard let header = json as? [String: Any] else { throw FormatError(description: "header is not a JSON object") }
        guard let raw = header["__metadata__"] else { return [:] }
        guard let object = raw as? [String: Any] else { throw FormatError(description: "__metadata__ is not a JSON object") }
        var out: [String: String] = [:]
        for (key, value) in object {
            guard let text = value as? String else { throw FormatError(description: "__metadata__ value of '\(key)' is not a string") }
            out[key] = text
        }
        return out
    }

    private static func quote(_ s: String) -> String {
        var out = "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case let c where c.value < 0x20: out += String(format: "\\u%04x", c.value)
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}
