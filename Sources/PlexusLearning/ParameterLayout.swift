/// The named layout of a model's flat Float32 parameter vector: tensors in order, each with a name,
/// a shape (row-major) and whether the L2 penalty applies to it (weights yes, intercepts no).
///
/// Names and shapes follow safetensors conventions, so a parameter vector can be exported as one.
public struct ParameterLayout: Sendable, Hashable {
    public struct Tensor: Sendable, Hashable {
        public var name: String
        public var shape: [Int]
        /// Whether ``Plan/l2`` penalises this tensor.
        public var penalized: Bool
        /// Offset of the first element in the flat vector.
        public var offset: Int
        public var count: Int { shape.reduce(1, *) }
        public var range: Range<Int> { offset..<(offset + count) }
    }

    public private(set) var tensors: [Tensor] = []
    /// Total number of Float32 parameters.
    public private(set) var count: Int = 0

    public init() {}

    public init(_ tensors: [(name: String, shape: [Int], penalized: Bool)]) {
        for t in tensors { append(t.name, shape: t.shape, penalized: t.penalized) }
    }

    public mutating func append(_ name: String, shape: [Int], penalized: Bool) {
        precondition(!tensors.contains { $0.name == name }, "duplicate tensor name \(name)")
        let tensor = Tensor(name: name, shape: shape, penalized: penalized, offset: count)
        tensors.append(tensor)
        count += tensor.count
    }

    public subscript(name: String) -> Tensor? { tensors.first { $0.name == name } }

    /// 1 for every penalised element, 0 otherwise; length ``count``.
    public var penaltyMask: [Float] {
        var mask = [Float](repeating: 0, count: count)
        for t in tensors where t.penalized { for i in t.range { mask[i] = 1 } }
        return mask
    }
}
