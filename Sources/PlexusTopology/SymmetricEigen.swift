/// Eigenvalues of a real symmetric matrix, written by hand: Householder reduction to
/// tridiagonal form, then the implicit QL algorithm with Wilkinson-style shifts
/// (the classic `tred2` + `tqli` pair, eigenvalues only). O(n³) time, O(n²) memory.
enum SymmetricEigen {
    /// The eigenvalues of the n × n symmetric matrix `matrix` (row-major), in no particular
    /// order. Only the lower triangle is read. Non-finite input yields non-finite output,
    /// never a trap; QL gives up on a value after 100 iterations and keeps its estimate.
    static func eigenvalues(_ matrix: [Double], n: Int) -> [Double] {
        precondition(matrix.count == n * n, "matrix must be n × n")
        guard n > 0 else { return [] }
        if n == 1 { return [matrix[0]] }
        var a = matrix
        var d = [Double](repeating: 0, count: n)
        var e = [Double](repeating: 0, count: n)
        a.withUnsafeMutableBufferPointer { a in
            d.withUnsafeMutableBufferPointer { d in
                e.withUnsafeMutableBufferPointer { e in
                    tridiagonalise(a, n: n, d: d, e: e)
                    implicitQL(n: n, d: d, e: e)
                }
            }
        }
        return d
    }

    /// Householder reduction; on return d holds the diagonal, e[1..<n] the sub-diagonal.
    private static func tridiagonalise(
        _ a: UnsafeMutableBufferPointer<Double>,
        n: Int,
        d: UnsafeMutableBufferPointer<Double>,
        e: UnsafeMutableBufferPointer<Double>
    ) {
        for i in stride(from: n - 1, through: 1, by: -1) {
            let l = i - 1
            let rowI = i * n
            if l > 0 {
                var scale = 0.0
                for k in 0...l { scale += abs(a[rowI + k]) }
                if scale == 0 {
                    e[i] = a[rowI + l]
                } else {
                    var h = 0.0
                    for k in 0...l {
                        a[rowI + k] /= scale
                        h += a[rowI + k] * a[rowI + k]
                    }
                    var f = a[rowI + l]
                    let g = f >= 0 ? -h.squareRoot() : h.squareRoot()
                    e[i] = scale * g
                    h -= f * g
                    a[rowI + l] = f - g
                    f = 0
                    for j in 0...l {
                        var g = 0.0
                        let rowJ = j * n
                        for k in 0...j { g += a[rowJ + k] * a[rowI + k] }
                        if j + 1 <= l {
                            for k in (j + 1)...l { g += a[k * n + j] * a[rowI + k] }
                        }
                        e[j] = g / h
                        f += e[j] * a[rowI + j]
                    }
                    let hh = f / (h + h)
                    for j in 0...l {
                        let f = a[rowI + j]
                        let g = e[j] - hh * f
                        e[j] = g
                        let rowJ = j * n
                        for k in 0...j { a[rowJ + k] -= f * e[k] + g * a[rowI + k] }
                    }
                }
            } else {
                e[i] = a[rowI + l]
            }
        }
        e[0] = 0
        for i in 0..<n { d[i] = a[i * n + i] }
    }

    /// Eigenvalues of the tridiagonal matrix (d, e) by implicit QL; results in d.
    private static func implicitQL(n: Int, d: UnsafeMutableBufferPointer<Double>, e: UnsafeMutableBufferPointer<Double>) {
        for i in 1..<n { e[i - 1] = e[i] }
        e[n - 1] = 0
        for l in 0..<n {
            var iterations = 0
            while true {
                var m = l
                while m < n - 1 {
                    let dd = abs(d[m]) + abs(d[m + 1])
                    if abs(e[m]) <= Double.ulpOfOne * dd { break }
                    m += 1
                }
                if m == l { break }
                iterations += 1
                if iterations > 100 || !e[l].isFinite || !d[l].isFinite { break }
                var g = (d[l + 1] - d[l]) / (2 * e[l])
                var r = hypot2(g, 1)
                g = d[m] - d[l] + e[l] / (g + (g >= 0 ? r : -r))
                var s = 1.0, c = 1.0, p = 0.0
                var i = m - 1
                var deflated = false
                while i >= l {
                    let f = s * e[i]
                    let b = c * e[i]
                    r = hypot2(f, g)
                    e[i + 1] = r
                    if r == 0 {
                        d[i + 1] -= p
                        e[m] = 0
                        deflated = true
                        break
                    }
                    s = f / r
                    c = g / r
                    g = d[i + 1] - p
                    r = (d[i] - g) * s + 2 * c * b
                    p = s * r
                    d[i + 1] = g + p
                    g = c * r - b
                    i -= 1
                }
                if deflated { continue }
                d[l] -= p
                e[l] = g
                e[m] = 0
            }
        }
    }

    /// √(x² + y²) without destructive overflow.
    private static func hypot2(_ x: Double, _ y: Double) -> Double {
        let ax = abs(x), ay = abs(y)
        if ax > ay { let q = ay / ax; return ax * (1 + q * q).squareRoot() }
        if ay == 0 { return 0 }
        let q = ax / ay
        return ay * (1 + q * q).squareRoot()
    }
}

/// Numerical helpers exposed for tests and tools.
public enum TopologyMath {
    /// The eigenvalues of an n × n real symmetric matrix (row-major; only the lower triangle
    /// is read), by Householder tridiagonalisation and implicit QL. O(n³).
    public static func symmetricEigenvalues(_ matrix: [Double], n: Int) -> [Double] {
        SymmetricEigen.eigenvalues(matrix, n: n)
    }
}
