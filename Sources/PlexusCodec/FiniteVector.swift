/// Finiteness checks over Float32 vectors, written so the compiler vectorizes them: one pass,
/// no early exit, the exponent bits OR-ed together (an all-ones exponent is NaN or ±∞).
package enum FiniteVector {
    /// Whether every value is finite.
    package static func allFinite(_ values: UnsafeBufferPointer<Float>) -> Bool {
        var bad: UInt32 = 0
        for v in values { bad |= (v.bitPattern & 0x7F80_0000 == 0x7F80_0000) ? 1 : 0 }
        return bad == 0
    }

    /// The index of the first NaN or infinite value, if any (the slow path after ``allFinite(_:)``).
    package static func firstNonFinite(_ values: UnsafeBufferPointer<Float>) -> Int? {
        allFinite(values) ? nil : values.firstIndex { !$0.isFinite }
    }

    /// `values[i] = base[i] + values[i]` for every i; returns whether every sum is finite.
    ///
    /// The sums are the same IEEE additions as `base[i] += values[i]`, bit for bit.
    package static func add(_ base: UnsafeBufferPointer<Float>, into values: UnsafeMutableBufferPointer<Float>) -> Bool {
        precondition(base.count == values.count, "vectors of different lengths")
        guard let b = base.baseAddress, let v = values.baseAddress else { return true }
        var bad: UInt32 = 0
        for i in 0..<values.count {
            let sum = b[i] + v[i]
            v[i] = sum
            bad |= (sum.bitPattern & 0x7F80_0000 == 0x7F80_0000) ? 1 : 0
        }
        return bad == 0
    }
}
