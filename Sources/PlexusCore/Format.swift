/// Number formatting without Foundation.
public enum Format {
    /// `x` with `decimals` digits after the point, rounded half away from zero.
    public static func fixed(_ x: Double, decimals: Int) -> String {
        guard x.isFinite else { return x.isNaN ? "nan" : (x < 0 ? "-inf" : "inf") }
        var scale = 1.0
        for _ in 0..<decimals { scale *= 10 }
        let scaled = (abs(x) * scale).rounded()
        guard scaled < 9e15 else { return "\(x)" }
        let n = Int(scaled)
        let p = Int(scale)
        var s = String(n / p)
        if decimals > 0 {
            let frac = String(n % p)
            s += "." + String(repeating: "0", count: decimals - frac.count) + frac
        }
        return (x < 0 && n != 0 ? "-" : "") + s
    }

    /// Three significant digits, trailing zeros removed: 0.0508, 1.25, 2100.
    public static func number(_ x: Double) -> String {
        guard x.isFinite, x != 0 else { return x == 0 ? "0" : fixed(x, decimals: 0) }
        var magnitude = 0
        var a = abs(x)
        while a >= 10 {
            a /= 10
            magnitude += 1
        }
        while a < 1 {
            a *= 10
            magnitude -= 1
        }
        let decimals = max(0, 2 - magnitude)
        var s = fixed(x, decimals: min(decimals, 12))
        if s.contains(".") {
            while s.hasSuffix("0") { s.removeLast() }
            if s.hasSuffix(".") { s.removeLast() }
        }
        return s
    }

    /// Rounds, to the nearest whole round, with thousands separators: 2,152.
    public static func rounds(_ x: Double) -> String {
        guard x.isFinite, x < 1e15 else { return "∞" }
        let n = Int(x.rounded())
        var digits = Array(String(n))
        var out: [Character] = []
        while digits.count > 3 {
            out = [","] + digits.suffix(3) + out
            digits.removeLast(3)
        }
        return String(digits + out)
    }
}
