#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Small dense kernels on raw pointers, SIMD8-unrolled; no allocation.

enum Kernels {
    /// Σ a[i]·b[i] over `n` elements.
    @inline(__always)
    static func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Float {
        var acc0 = SIMD8<Float>()
        var acc1 = SIMD8<Float>()
        var i = 0
        let ra = UnsafeRawPointer(a)
        let rb = UnsafeRawPointer(b)
        while i + 16 <= n {
            acc0 += ra.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self)
                * rb.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self)
            acc1 += ra.loadUnaligned(fromByteOffset: i * 4 + 32, as: SIMD8<Float>.self)
                * rb.loadUnaligned(fromByteOffset: i * 4 + 32, as: SIMD8<Float>.self)
            i += 16
        }
        if i + 8 <= n {
            acc0 += ra.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self)
                * rb.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self)
            i += 8
        }
        var sum = (acc0 + acc1).sum()
        while i < n {
            sum += a[i] * b[i]
            i += 1
        }
        return sum
    }

    /// y[i] += alpha·x[i] over `n` elements.
    @inline(__always)
    static func axpy(_ alpha: Float, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ n: Int) {
        let va = SIMD8<Float>(repeating: alpha)
        var i = 0
        let rx = UnsafeRawPointer(x)
        let ry = UnsafeMutableRawPointer(y)
        while i + 8 <= n {
            let v = ry.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self)
                + va * rx.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self)
            ry.storeBytes(of: v, toByteOffset: i * 4, as: SIMD8<Float>.self)
            i += 8
        }
        while i < n {
            y[i] += alpha * x[i]
            i += 1
        }
    }

    /// log(1 + e^x), stable for large |x|.
    @inline(__always)
    static func softplus(_ x: Double) -> Double {
        x > 0 ? x + log1p(exp(-x)) : log1p(exp(x))
    }

    /// 1 / (1 + e^-x), stable for large |x|.
    @inline(__always)
    static func sigmoid(_ x: Double) -> Double {
        if x >= 0 { return 1 / (1 + exp(-x)) }
        let e = exp(x)
        return e / (1 + e)
    }
}

extension Kernels {
    /// Rows folded from a Float32 block accumulator into the Double one (accuracy at 10⁶ rows).
    static let blockRows = 256

    /// For a logistic output η with 0/1 label y: returns (log-loss, p − y), with one exp and one log1p.
    @inline(__always)
    static func logisticLoss(_ eta: Float, _ y: Float) -> (loss: Float, residual: Float) {
        let e = expf(-abs(eta))
        let p = eta >= 0 ? 1 / (1 + e) : e / (1 + e)
        let loss = max(eta, 0) + log1pf(e) - y * eta
        return (loss, p - y)
    }
}

extension Kernels {
    /// e^x for eight lanes, x clamped to [−87, 0] (the range the logistic loss needs): Cody–Waite
    /// reduction by ln 2 and Cephes' degree-6 polynomial; relative error ≈ 1e-7.
    @inline(__always)
    static func expNonPositive8(_ x: SIMD8<Float>) -> SIMD8<Float> {
        // (`clamped` calls generic pointwiseMin/Max out of line; a masked select stays in registers.)
        let x = x.replacing(with: -87, where: x .< -87).replacing(with: 0, where: x .> 0)
        // Round to nearest by adding and subtracting 1.5·2²³ (|x·log₂e| < 2²²): baseline x86-64
        // has no vector rounding instruction, and `rounded()` falls back to a per-lane call.
        // The sum's bit pattern is 0x4B40_0000 + n, which gives 2ⁿ without a (per-lane, slow)
        // Float → Int32 conversion.
        let magic = SIMD8<Float>(repeating: 12_582_912)
        let shifted = x * 1.442_695_04 + magic
        let n = shifted - magic
        var r = x - n * 0.693_359_375
        r = r - n * -2.121_944_4e-4
        var p = SIMD8<Float>(repeating: 1.987_569_15e-4)
        p = p * r + 1.398_199_95e-3
        p = p * r + 8.333_451_9e-3
        p = p * r + 4.166_579_59e-2
        p = p * r + 1.666_666_55e-1
        p = p * r + 5.000_000_12e-1
        let y = p * (r * r) + r + 1
        let scale = unsafeBitCast((unsafeBitCast(shifted, to: SIMD8<Int32>.self) &- 0x4B40_0000 &+ 127) &<< 23, to: SIMD8<Float>.self)
        return y * scale
    }

    /// log(1 + e) for e in [0, 1], eight lanes: 2·atanh(s) with s = e/(2 + e) ≤ 1/3, series to s¹³;
    /// relative error ≈ 2e-8 before rounding.
    @inline(__always)
    static func log1pUnit8(_ e: SIMD8<Float>) -> SIMD8<Float> {
        let s = e / (2 + e)
        let z = s * s
        var p = SIMD8<Float>(repeating: 1.0 / 13)
        p = p * z + 1.0 / 11
        p = p * z + 1.0 / 9
        p = p * z + 1.0 / 7
        p = p * z + 1.0 / 5
        p = p * z + 1.0 / 3
        p = p * z + 1
        return 2 * s * p
    }

    /// Log-losses and residuals p − y of `count` rows: returns (Σ loss, Σ residual) and writes each
    /// residual. Eight rows at a time in SIMD, the rest one by one.
    static func logisticResiduals(
        eta: UnsafePointer<Float>, labels: UnsafePointer<Float>, count: Int, residuals: UnsafeMutablePointer<Float>
    ) -> (loss: Double, residual: Double) {
        var loss = SIMD8<Float>()
        var sum = SIMD8<Float>()
        var i = 0
        while i + 8 <= count {
            let e = UnsafeRawPointer(eta + i).loadUnaligned(as: SIMD8<Float>.self)
            let y = UnsafeRawPointer(labels + i).loadUnaligned(as: SIMD8<Float>.self)
            let (l, r) = logisticLoss8(e, y)
            loss += l
            sum += r
            UnsafeMutableRawPointer(residuals + i).storeBytes(of: r, as: SIMD8<Float>.self)
            i += 8
        }
        var totalLoss = Double(loss.sum())
        var totalResidual = Double(sum.sum())
        while i < count {
            let (l, r) = logisticLoss(eta[i], labels[i])
            residuals[i] = r
            totalLoss += Double(l)
            totalResidual += Double(r)
            i += 1
        }
        return (totalLoss, totalResidual)
    }

    /// ``logisticLoss(_:_:)`` for eight rows at once.
    @inline(__always)
    static func logisticLoss8(_ eta: SIMD8<Float>, _ y: SIMD8<Float>) -> (loss: SIMD8<Float>, residual: SIMD8<Float>) {
        let negative = eta .< 0
        let magnitude = eta.replacing(with: -eta, where: negative)
        let e = expNonPositive8(-magnitude)
        let inverse = 1 / (1 + e)
        let p = inverse.replacing(with: e * inverse, where: negative)
        let loss = eta.replacing(with: 0, where: negative) + log1pUnit8(e) - y * eta
        return (loss, p - y)
    }
}

/// The two halves of a linear model's pass over a row-major matrix, with the weights padded to
/// whole SIMD8 chunks. A row's last chunk reads up to seven floats of the next row: the zero
/// weights cancel them (features are finite) and the padding lanes of the accumulator absorb
/// them; rows whose last chunk would read past the end of the matrix take a scalar path.
enum LinearKernels {
    /// Rows `0..<safeRows(n, d)` may be read as whole padded chunks.
    @inline(__always)
    static func safeRows(_ n: Int, _ d: Int) -> Int {
        let padded = (d + 7) & ~7
        return n * d < padded ? 0 : min(n, (n * d - padded) / d + 1)
    }

    /// η_i = w·x_i + bias for every row.
    static func predict(
        x: UnsafePointer<Float>, rows n: Int, dimension d: Int, weights: UnsafePointer<Float>, bias: Float,
        into eta: UnsafeMutablePointer<Float>
    ) {
        let padded = (d + 7) & ~7
        let chunks = padded / 8
        let safe = safeRows(n, d)
        let w = UnsafeMutableRawPointer.allocate(byteCount: padded * 4, alignment: 32)
        defer { w.deallocate() }
        w.initializeMemory(as: Float.self, repeating: 0, count: padded)
        w.copyMemory(from: weights, byteCount: d * 4)
        var i = 0
        while i + 4 <= safe {
            let x0 = UnsafeRawPointer(x + i * d)
            let stride = d * 4
            var a0 = SIMD8<Float>()
            var a1 = SIMD8<Float>()
            var a2 = SIMD8<Float>()
            var a3 = SIMD8<Float>()
            for c in 0..<chunks {
                let o = c * 32
                let wc = w.load(fromByteOffset: o, as: SIMD8<Float>.self)
                a0 += x0.loadUnaligned(fromByteOffset: o, as: SIMD8<Float>.self) * wc
                a1 += x0.loadUnaligned(fromByteOffset: o + stride, as: SIMD8<Float>.self) * wc
                a2 += x0.loadUnaligned(fromByteOffset: o + 2 * stride, as: SIMD8<Float>.self) * wc
                a3 += x0.loadUnaligned(fromByteOffset: o + 3 * stride, as: SIMD8<Float>.self) * wc
            }
            // Four horizontal sums at once (a 4×4 transpose by shuffles), stored as one vector.
            let b0 = a0.lowHalf + a0.highHalf
            let b1 = a1.lowHalf + a1.highHalf
            let b2 = a2.lowHalf + a2.highHalf
            let b3 = a3.lowHalf + a3.highHalf
            let t0 = SIMD4(lowHalf: b0.evenHalf, highHalf: b1.evenHalf) + SIMD4(lowHalf: b0.oddHalf, highHalf: b1.oddHalf)
            let t1 = SIMD4(lowHalf: b2.evenHalf, highHalf: b3.evenHalf) + SIMD4(lowHalf: b2.oddHalf, highHalf: b3.oddHalf)
            let sums = SIMD4(lowHalf: t0.evenHalf, highHalf: t1.evenHalf) + SIMD4(lowHalf: t0.oddHalf, highHalf: t1.oddHalf)
            UnsafeMutableRawPointer(eta + i).storeBytes(of: sums + bias, as: SIMD4<Float>.self)
            i += 4
        }
        while i < n {
            eta[i] = Kernels.dot(weights, x + i * d, d) + bias
            i += 1
        }
    }

    /// acc[j] += Σ_i r_i·x_ij: Float32 blocks of ``Kernels/blockRows`` rows folded into Double.
    static func accumulateTransposed(
        x: UnsafePointer<Float>, rows n: Int, dimension d: Int, residuals r: UnsafePointer<Float>,
        into acc: UnsafeMutablePointer<Double>
    ) {
        let padded = (d + 7) & ~7
        let chunks = padded / 8
        let safe = safeRows(n, d)
        let block = UnsafeMutablePointer<Float>.allocate(capacity: padded)
        defer { block.deallocate() }
        block.initialize(repeating: 0, count: padded)
        let g = UnsafeMutableRawPointer(block)
        var row = 0
        while row < n {
            let end = min(row + Kernels.blockRows, n)
            var i = row
            while i + 8 <= min(end, safe) {
                let x0 = UnsafeRawPointer(x + i * d)
                let stride = d * 4
                let rv = UnsafeRawPointer(r + i).loadUnaligned(as: SIMD8<Float>.self)
                for c in 0..<chunks {
                    let o = c * 32
                    var v = g.load(fromByteOffset: o, as: SIMD8<Float>.self)
                    v += rv[0] * x0.loadUnaligned(fromByteOffset: o, as: SIMD8<Float>.self)
                    v += rv[1] * x0.loadUnaligned(fromByteOffset: o + stride, as: SIMD8<Float>.self)
                    v += rv[2] * x0.loadUnaligned(fromByteOffset: o + 2 * stride, as: SIMD8<Float>.self)
                    v += rv[3] * x0.loadUnaligned(fromByteOffset: o + 3 * stride, as: SIMD8<Float>.self)
                    v += rv[4] * x0.loadUnaligned(fromByteOffset: o + 4 * stride, as: SIMD8<Float>.self)
                    v += rv[5] * x0.loadUnaligned(fromByteOffset: o + 5 * stride, as: SIMD8<Float>.self)
                    v += rv[6] * x0.loadUnaligned(fromByteOffset: o + 6 * stride, as: SIMD8<Float>.self)
                    v += rv[7] * x0.loadUnaligned(fromByteOffset: o + 7 * stride, as: SIMD8<Float>.self)
                    g.storeBytes(of: v, toByteOffset: o, as: SIMD8<Float>.self)
                }
                i += 8
            }
            while i < end {
                Kernels.axpy(r[i], x + i * d, block, d)
                i += 1
            }
            for j in 0..<d { acc[j] += Double(block[j]) }
            for j in 0..<padded { block[j] = 0 }
            row = end
        }
    }
}
