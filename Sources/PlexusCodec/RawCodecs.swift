import PlexusCore

/// The codec transforms before zstd: float vectors to the raw byte layouts of the wire format
/// and back. Pure functions over buffers; no allocation beyond what the caller hands in (top-k
/// selection aside). The layouts are documented in ``DeltaEnvelope``.
enum RawCodecs {
    // MARK: Sizes

    /// The exact raw length of a fixed-size codec for `count` values, or the largest raw length
    /// top-k may produce. Used to reject a header's declared raw length before allocating.
    static func rawLengthBound(codec: WireCodec, count: Int) -> Int {
        switch codec {
        case .lossless: return 4 * count
        case .float16, .bfloat16: return 2 * count
        case .int8(let chunk): return 4 * chunkCount(count, chunk) + count
        case .topK(let k, let values):
            return 10 * k + valueBytes(values, k)
        }
    }

    /// Whether the raw length must equal ``rawLengthBound(codec:count:)`` exactly.
    static func isExactLength(_ codec: WireCodec) -> Bool {
        if case .topK = codec { return false }
        return true
    }

    static func chunkCount(_ count: Int, _ chunk: Int) -> Int { (count + chunk - 1) / chunk }

    static func valueBytes(_ values: CodecSpec.TopKValues, _ k: Int) -> Int {
        switch values {
        case .float32: return 4 * k
        case .float16: return 2 * k
        case .int8: return k == 0 ? 0 : 4 + k
        }
    }

    // MARK: Shuffled planes (lossless, f16, bf16)

    /// Writes byte `b` of every 4-byte value into plane `b`: all first bytes, then all second bytes, …
    static func shuffle32(_ values: UnsafeBufferPointer<UInt32>, into out: UnsafeMutableRawBufferPointer) {
        let n = values.count
        // One pointer per plane: no index arithmetic (and no overflow checks) in the loop, so it vectorizes.
        let p0 = out.baseAddress!.assumingMemoryBound(to: UInt8.self)
        let (p1, p2, p3) = (p0 + n, p0 + 2 * n, p0 + 3 * n)
        for i in 0..<n {
            let v = values[i].littleEndian
            p0[i] = UInt8(truncatingIfNeeded: v)
            p1[i] = UInt8(truncatingIfNeeded: v >> 8)
            p2[i] = UInt8(truncatingIfNeeded: v >> 16)
            p3[i] = UInt8(truncatingIfNeeded: v >> 24)
        }
    }

    static func unshuffle32(_ raw: UnsafeRawBufferPointer, into values: UnsafeMutableBufferPointer<UInt32>) {
        let n = values.count
        let p0 = raw.baseAddress!.assumingMemoryBound(to: UInt8.self)
        let (p1, p2, p3) = (p0 + n, p0 + 2 * n, p0 + 3 * n)
        for i in 0..<n {
            let v = UInt32(p0[i]) | UInt32(p1[i]) << 8 | UInt32(p2[i]) << 16 | UInt32(p3[i]) << 24
            values[i] = UInt32(littleEndian: v)
        }
    }

    static func shuffle16(_ halves: UnsafeBufferPointer<UInt16>, into out: UnsafeMutableRawBufferPointer) {
        let n = halves.count
        let o = out.baseAddress!.assumingMemoryBound(to: UInt8.self)
        for i in 0..<n {
            let v = halves[i]
            o[i] = UInt8(truncatingIfNeeded: v)
            o[n + i] = UInt8(truncatingIfNeeded: v >> 8)
        }
    }

    // MARK: Half precision

    /// The largest finite float16, 65504: larger magnitudes are clamped to it when encoding.
    static let float16Max: Float = 65504

    /// IEEE binary16 bits of `x`, rounded to nearest even; magnitudes above 65504 clamp to ±65504.
    ///
    /// Bit arithmetic rather than `Float16(x)`, which is a library call per value on x86-64
    /// without F16C; this form has no calls and few branches, so loops over it vectorize.
    @inline(__always)
    static func float16Bits(_ x: Float) -> UInt16 {
        let clamped = Swift.min(Swift.max(x, -float16Max), float16Max)
        var bits = clamped.bitPattern
        let sign = bits & 0x8000_0000
        bits ^= sign
        // Below 2^-14: a subnormal half (or zero). Adding 0.5 lines the half's mantissa up with
        // the float's low bits, and the FPU rounds to nearest even for us.
        let subnormal = (Float(bitPattern: bits) + 0.5).bitPattern &- 0x3F00_0000
        // Normal: rebias the exponent (127 → 15) and round the 13 dropped bits to nearest even.
        let normal = (bits &+ 0xC800_0FFF &+ ((bits >> 13) & 1)) >> 13
        // Both computed, one selected: no branch, so the loop vectorizes.
        let half = bits < 0x3880_0000 ? subnormal : normal
        return UInt16(truncatingIfNeeded: half | (sign >> 16))
    }

    /// bfloat16 bits of `x`, rounded to nearest even; a finite value never rounds to infinity.
    @inline(__always)
    static func bfloat16Bits(_ x: Float) -> UInt16 {
        let bits = x.bitPattern
        let rounded = bits &+ 0x7FFF &+ ((bits >> 16) & 1)
        var half = UInt16(truncatingIfNeeded: rounded >> 16)
        if half & 0x7F80 == 0x7F80 { half = UInt16(truncatingIfNeeded: bits >> 31) << 15 | 0x7F7F }
        return half
    }

    @inline(__always)
    static func float(fromFloat16 bits: UInt16) -> Float {
        let h = UInt32(bits)
        let magnitude = (h & 0x7FFF) << 13
        let exponent = magnitude & 0x0F80_0000
        let normal = magnitude &+ 0x3800_0000  // rebias 15 → 127
        let special = magnitude &+ 0x7000_0000  // infinity or NaN: exponent all ones
        // Zero or subnormal: let the FPU normalise (magnitude · 2^-24).
        let subnormal = (Float(bitPattern: magnitude &+ 0x3880_0000) - Float(bitPattern: 0x3880_0000)).bitPattern
        var out = exponent == 0x0F80_0000 ? special : (exponent == 0 ? subnormal : normal)
        out |= (h & 0x8000) << 16
        return Float(bitPattern: out)
    }

    @inline(__always)
    static func float(fromBFloat16 bits: UInt16) -> Float { Float(bitPattern: UInt32(bits) << 16) }

    static func encodeHalf(
        _ values: UnsafeBufferPointer<Float>,
        brain: Bool,
        into out: UnsafeMutableRawBufferPointer,
        reconstruct: UnsafeMutableBufferPointer<Float>?
    ) {
        let n = values.count
        let o = out.baseAddress!.assumingMemoryBound(to: UInt8.self)
        let high = o + n
        if brain {
            for i in 0..<n {
                let h = bfloat16Bits(values[i])
                o[i] = UInt8(truncatingIfNeeded: h)
                high[i] = UInt8(truncatingIfNeeded: h >> 8)
            }
        } else {
            for i in 0..<n {
                let h = float16Bits(values[i])
                o[i] = UInt8(truncatingIfNeeded: h)
                high[i] = UInt8(truncatingIfNeeded: h >> 8)
            }
        }
        if let reconstruct {
            for i in 0..<n {
                let h = UInt16(o[i]) | UInt16(high[i]) << 8
                reconstruct[i] = brain ? float(fromBFloat16: h) : float(fromFloat16: h)
            }
        }
    }

    static func decodeHalf(
        _ raw: UnsafeRawBufferPointer,
        brain: Bool,
        into values: UnsafeMutableBufferPointer<Float>
    ) throws(DeltaError) {
        let n = values.count
        let r = raw.baseAddress!.assumingMemoryBound(to: UInt8.self)
        let high = r + n
        let out = values.baseAddress!
        let exponentMask: UInt16 = brain ? 0x7F80 : 0x7C00
        // Plane pointers and arithmetic (not short-circuit) accumulation keep the loops free of
        // branches and overflow checks, so they vectorize. (h & mask) + (0x8000 − mask) has bit
        // 15 set exactly when every exponent bit of h is: an infinity or a NaN.
        var bad: UInt16 = 0
        if brain {
            for i in 0..<n {
                let h = UInt16(r[i]) | UInt16(high[i]) << 8
                bad |= (h & exponentMask) &+ (0x8000 &- exponentMask)
                out[i] = float(fromBFloat16: h)
            }
        } else {
            for i in 0..<n {
                let h = UInt16(r[i]) | UInt16(high[i]) << 8
                bad |= (h & exponentMask) &+ (0x8000 &- exponentMask)
                out[i] = float(fromFloat16: h)
            }
        }
        if bad & 0x8000 != 0 {
            let bad = (0..<n).first { (UInt16(r[$0]) | UInt16(high[$0]) << 8) & exponentMask == exponentMask }!
            throw DeltaError(.nonFinite, "value \(bad) is NaN or infinite")
        }
    }

    // MARK: int8 with per-chunk absmax scale

    static func encodeInt8(
        _ values: UnsafeBufferPointer<Float>,
        chunk: Int,
        into out: UnsafeMutableRawBufferPointer,
        reconstruct: UnsafeMutableBufferPointer<Float>?
    ) {
        let n = values.count
        let chunks = chunkCount(n, chunk)
        let scales = out.baseAddress!
        let q = (out.baseAddress! + 4 * chunks).assumingMemoryBound(to: Int8.self)
        for c in 0..<chunks {
            let lo = c * chunk
            let hi = Swift.min(n, lo + chunk)
            let scale = absoluteMaximum(UnsafeBufferPointer(rebasing: values[lo..<hi])) / 127
            let inverse: Float = scale > 0 ? 1 / scale : 0
            (scales + 4 * c).storeBytes(of: scale.bitPattern.littleEndian, as: UInt32.self)
            for i in lo..<hi { q[i] = quantize(values[i] * inverse) }
            if let reconstruct {
                for i in lo..<hi { reconstruct[i] = Float(q[i]) * scale }
            }
        }
    }

    /// The largest magnitude in `values` (all finite). Compares bit patterns as integers — the
    /// order of non-negative floats — so the reduction vectorizes, which a float max does not.
    @inline(__always)
    static func absoluteMaximum(_ values: UnsafeBufferPointer<Float>) -> Float {
        var best: UInt32 = 0
        for v in values { best = Swift.max(best, v.bitPattern & 0x7FFF_FFFF) }
        return Float(bitPattern: best)
    }

    /// Rounds `x` (within ±127 up to rounding error) to the nearest integer, ties to even, as int8.
    /// Adding 1.5 · 2^23 puts the rounded integer in the float's low mantissa bits — a branch-free
    /// conversion the compiler vectorizes, unlike the trapping `Int8(_: Float)`.
    @inline(__always)
    static func quantize(_ x: Float) -> Int8 {
        let clamped = Swift.min(Swift.max(x, -127), 127)
        return Int8(truncatingIfNeeded: (clamped + 12_582_912).bitPattern)
    }

    static func decodeInt8(
        _ raw: UnsafeRawBufferPointer,
        chunk: Int,
        into values: UnsafeMutableBufferPointer<Float>
    ) throws(DeltaError) {
        let n = values.count
        let chunks = chunkCount(n, chunk)
        let q = (raw.baseAddress! + 4 * chunks).assumingMemoryBound(to: Int8.self)
        for c in 0..<chunks {
            let scale = Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * c, as: UInt32.self)))
            // |q| ≤ 127, so every q · scale is finite exactly when 127 · scale is.
            guard scale.isFinite, scale >= 0, (127 * scale).isFinite else {
                throw DeltaError(.nonFinite, "int8 scale of chunk \(c) is \(scale); expected a finite value ≥ 0 with 127 · scale finite")
            }
            let lo = c * chunk
            let hi = Swift.min(n, lo + chunk)
            var sawMinimum: UInt8 = 0
            for i in lo..<hi {
                let v = q[i]
                sawMinimum |= v == Int8.min ? 1 : 0
                values[i] = Float(v) * scale
            }
            if sawMinimum != 0 {
                let i = (lo..<hi).first { q[$0] == Int8.min }!
                throw DeltaError(.badCodecParameters, "int8 value \(i) is -128; expected -127…127")
            }
        }
    }

    // MARK: top-k

    /// The indices of the `k` largest magnitudes of `values`, ascending; ties at the threshold go
    /// to the lowest indices.
    ///
    /// A radix select over the magnitudes' bit patterns (order-preserving for non-negative
    /// floats): a 4096-bucket histogram of the top 12 bits (exponent and 4 mantissa bits; fits in
    /// L1) finds the bucket holding the k-th largest key, the keys of that bucket alone are sorted
    /// to find the exact threshold, and a last pass keeps everything above it. O(n), three
    /// sequential passes, no allocation proportional to n beyond the result.
    static func topKIndices(_ values: UnsafeBufferPointer<Float>, k: Int) -> [UInt32] {
        let n = values.count
        guard k > 0 else { return [] }
        if k >= n { return (0..<n).map { UInt32($0) } }
        let keys = UnsafeRawBufferPointer(values).baseAddress!.assumingMemoryBound(to: UInt32.self)
        let shift: UInt32 = 19  // 31-bit magnitude key → 12-bit bucket
        var histogram = [UInt32](repeating: 0, count: 1 << 12)
        histogram.withUnsafeMutableBufferPointer { h in
            let hb = h.baseAddress!
            for i in 0..<n { hb[Int((keys[i] & 0x7FFF_FFFF) >> shift)] &+= 1 }
        }
        var remaining = k
        var bucket = (1 << 12) - 1
        while Int(histogram[bucket]) < remaining {
            remaining -= Int(histogram[bucket])
            bucket -= 1
        }
        // The keys in the threshold bucket; the `remaining`-th largest of them is the threshold.
        var candidates: [UInt32] = []
        candidates.reserveCapacity(Int(histogram[bucket]))
        let b = UInt32(bucket)
        for i in 0..<n {
            let key = keys[i] & 0x7FFF_FFFF
            if key >> shift == b { candidates.append(key) }
        }
        let threshold = kthLargest(&candidates, remaining)
        var above = 0
        for key in candidates where key > threshold { above += 1 }
        var ties = remaining - above
        var indices: [UInt32] = []
        indices.reserveCapacity(k)
        for i in 0..<n {
            let key = keys[i] & 0x7FFF_FFFF
            if key >= threshold {
                if key > threshold {
                    indices.append(UInt32(i))
                } else if ties > 0 {
                    indices.append(UInt32(i))
                    ties -= 1
                }
            }
        }
        return indices
    }

    /// The `k`-th largest element of `keys` (1-based), by quickselect; reorders `keys`.
    static func kthLargest(_ keys: inout [UInt32], _ k: Int) -> UInt32 {
        precondition(k >= 1 && k <= keys.count)
        return keys.withUnsafeMutableBufferPointer { a -> UInt32 in
            // Select index k-1 of the descending order.
            let target = k - 1
            var lo = 0
            var hi = a.count - 1
            while lo < hi {
                let mid = lo + (hi - lo) / 2
                // Median of three as pivot.
                let x = a[lo], y = a[mid], z = a[hi]
                let pivot = max(min(x, y), min(max(x, y), z))
                var i = lo
                var j = hi
                while i <= j {
                    while a[i] > pivot { i += 1 }
                    while a[j] < pivot { j -= 1 }
                    if i <= j {
                        a.swapAt(i, j)
                        i += 1
                        j -= 1
                    }
                }
                // Now a[lo...j] ≥ pivot ≥ a[i...hi], and a[j+1..<i] == pivot.
                if target <= j {
                    hi = j
                } else if target >= i {
                    lo = i
                } else {
                    return pivot
                }
            }
            return a[target]
        }
    }

    /// Writes the top-k raw layout into `out` (cleared first) and returns it.
    static func encodeTopK(
        _ values: UnsafeBufferPointer<Float>,
        k: Int,
        valueFormat: CodecSpec.TopKValues,
        into out: inout ByteWriter,
        reconstruct: UnsafeMutableBufferPointer<Float>?
    ) {
        let indices = topKIndices(values, k: k)
        var previous: UInt32 = 0
        for (j, index) in indices.enumerated() {
            out.write(varint: UInt64(j == 0 ? index : index - previous))
            previous = index
        }
        if let reconstruct { reconstruct.update(repeating: 0) }
        switch valueFormat {
        case .float32:
            for index in indices {
                let v = values[Int(index)]
                out.write(float32: v)
                reconstruct?[Int(index)] = v
            }
        case .float16:
            for index in indices {
                let h = float16Bits(values[Int(index)])
                out.write(littleEndian: h)
                reconstruct?[Int(index)] = float(fromFloat16: h)
            }
        case .int8:
            guard !indices.isEmpty else { return }
            var absmax: Float = 0
            for index in indices { absmax = Swift.max(absmax, Swift.abs(values[Int(index)])) }
            let scale = absmax / 127
            let inverse: Float = scale > 0 ? 1 / scale : 0
            out.write(float32: scale)
            for index in indices {
                let q = quantize(values[Int(index)] * inverse)
                out.write(UInt8(bitPattern: q))
                reconstruct?[Int(index)] = Float(q) * scale
            }
        }
    }

    static func decodeTopK(
        _ raw: UnsafeRawBufferPointer,
        k: Int,
        valueFormat: CodecSpec.TopKValues,
        into values: UnsafeMutableBufferPointer<Float>
    ) throws(DeltaError) {
        let n = values.count
        values.update(repeating: 0)
        var reader = ByteReader(raw)
        // Indices first, into a scratch array of k (bounded: k ≤ n was checked by the caller).
        var indices = [Int](repeating: 0, count: k)
        var previous = -1
        for j in 0..<k {
            let gap: UInt64
            do { gap = try reader.readVarint("top-k index \(j)") } catch {
                throw DeltaError(error == .malformedVarint ? .badIndices : .truncated, "top-k index \(j): \(error)")
            }
            if j > 0 && gap == 0 {
                throw DeltaError(.badIndices, "top-k index \(j) repeats index \(previous); indices must strictly increase")
            }
            guard gap < UInt64(n) else {
                throw DeltaError(.badIndices, "top-k index \(j) is out of range for \(n) parameters")
            }
            let index = (j == 0 ? 0 : previous) + Int(gap)
            guard index < n else {
                throw DeltaError(.badIndices, "top-k index \(j) is \(index), out of range for \(n) parameters")
            }
            indices[j] = index
            previous = index
        }
        do {
            switch valueFormat {
            case .float32:
                for j in 0..<k { values[indices[j]] = try reader.readFloat32("top-k value \(j)") }
            case .float16:
                for j in 0..<k { values[indices[j]] = float(fromFloat16: try reader.read(UInt16.self, "top-k value \(j)")) }
            case .int8:
                if k > 0 {
                    let scale = try reader.readFloat32("top-k int8 scale")
                    guard scale.isFinite, scale >= 0, (127 * scale).isFinite else {
                        throw DeltaError(.nonFinite, "top-k int8 scale is \(scale); expected a finite value ≥ 0 with 127 · scale finite")
                    }
                    for j in 0..<k {
                        let q = Int8(bitPattern: try reader.readByte("top-k value \(j)"))
                        guard q != Int8.min else {
                            throw DeltaError(.badCodecParameters, "top-k int8 value \(j) is -128; expected -127…127")
                        }
                        values[indices[j]] = Float(q) * scale
                    }
                }
            }
        } catch let error as ByteReader.Error {
            throw DeltaError(.truncated, error.description)
        } catch let error as DeltaError {
            throw error
        } catch {
            throw DeltaError(.truncated, "\(error)")
        }
        guard reader.isAtEnd else {
            throw DeltaError(.trailingBytes, "\(reader.remaining) bytes follow the top-k values")
        }
        for j in 0..<k where !values[indices[j]].isFinite {
            throw DeltaError(.nonFinite, "top-k value \(j) is NaN or infinite")
        }
    }
}
