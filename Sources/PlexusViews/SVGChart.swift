#if canImport(Glibc)
import Glibc
#endif
import PlexusCore

/// A line chart as standalone SVG: axes with ticks and labels, one polyline per series, dashed
/// horizontal reference lines, and a legend. No JavaScript, no external resources.
public struct LineChart {
    public struct Series {
        public var name: String
        public var points: [(x: Double, y: Double)]
        public init(name: String, points: [(x: Double, y: Double)]) {
            self.name = name
            self.points = points
        }
    }

    public struct Reference {
        public var name: String
        public var y: Double
        public init(name: String, y: Double) {
            self.name = name
            self.y = y
        }
    }

    public var title: String
    public var xLabel: String
    public var yLabel: String
    public var series: [Series]
    public var references: [Reference] = []
    public var logarithmic = false
    public var width = 720.0
    public var height = 320.0
    /// A series with more points is thinned to at most this many (``thinned(_:limit:)``), so a
    /// 40,000-round run gives a report of a few hundred kilobytes, not megabytes.
    public var maximumPoints = 2000

    public init(title: String, xLabel: String, yLabel: String, series: [Series]) {
        self.title = title
        self.xLabel = xLabel
        self.yLabel = yLabel
        self.series = series
    }

    static let palette = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f"]
    /// Reference lines: the first (centralized) black and long-dashed, the others grey, each with
    /// its own dash pattern, so that lines close together stay apart.
    static let referenceDashes = ["6 4", "2 3", "8 3 2 3", "1 3", "4 2 1 2"]

    /// `points` (ordered by x) thinned to at most about `limit`: in equal runs of consecutive
    /// points, the first, the lowest, the highest and the last are kept — so every peak and dip
    /// the eye would see survives, and the line keeps its ends.
    public static func thinned(_ points: [(x: Double, y: Double)], limit: Int) -> [(x: Double, y: Double)] {
        guard points.count > limit, limit >= 8 else { return points }
        let buckets = limit / 4
        var out: [(x: Double, y: Double)] = []
        out.reserveCapacity(limit)
        for b in 0..<buckets {
            let start = b * points.count / buckets, end = (b + 1) * points.count / buckets
            guard start < end else { continue }
            let run = points[start..<end]
            let low = run.indices.min { run[$0].y < run[$1].y }!
            let high = run.indices.max { run[$0].y < run[$1].y }!
            for i in Set([start, low, high, end - 1]).sorted() { out.append(points[i]) }
        }
        return out
    }

    public func render() -> String {
        let left = 70.0, right = 170.0, top = 36.0, bottom = 48.0
        let plotW = width - left - right, plotH = height - top - bottom
        let ys = series.flatMap { $0.points.map(\.y) } + references.map(\.y)
        let xs = series.flatMap { $0.points.map(\.x) }
        let usable = ys.filter { $0.isFinite && (!logarithmic || $0 > 0) }
        var yMin = usable.min() ?? 0, yMax = usable.max() ?? 1
        let xMin = xs.min() ?? 0, xMax = max(xs.max() ?? 1, (xs.min() ?? 0) + 1)
        func ty(_ y: Double) -> Double { logarithmic ? log10(max(y, 1e-300)) : y }
        if logarithmic {
            yMin = pow10(floor(log10(max(yMin, 1e-300))))
            yMax = pow10(ceil(log10(max(yMax, yMin * 10))))
        } else {
            if yMax == yMin { yMax += 0.5; yMin -= 0.5 }
            let pad = (yMax - yMin) * 0.05
            yMin -= pad
            yMax += pad
        }
        let tyMin = ty(yMin), tyMax = ty(yMax)
        func px(_ x: Double) -> Double { left + (x - xMin) / (xMax - xMin) * plotW }
        func py(_ y: Double) -> Double { top + plotH - (ty(y) - tyMin) / (tyMax - tyMin) * plotH }

        var svg = ##"<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="\##(fmt(width))" height="\##(fmt(height))" viewBox="0 0 \##(fmt(width)) \##(fmt(height))" role="img" aria-label="\##(escape(title))">"##
        svg += ##"<rect width="100%" height="100%" fill="#ffffff"/>"##
        svg += ##"<text class="title" x="\##(fmt(left))" y="20" font-size="15" font-weight="bold" fill="#222">\##(escape(title))</text>"##
        // Axes and ticks.
        svg += ##"<g class="axes" stroke="#444" stroke-width="1"><line x1="\##(fmt(left))" y1="\##(fmt(top + plotH))" x2="\##(fmt(left + plotW))" y2="\##(fmt(top + plotH))"/><line x1="\##(fmt(left))" y1="\##(fmt(top))" x2="\##(fmt(left))" y2="\##(fmt(top + plotH))"/></g>"##
        for tick in niceTicks(xMin, xMax, count: 6) {
            svg += ##"<line x1="\##(fmt(px(tick)))" y1="\##(fmt(top + plotH))" x2="\##(fmt(px(tick)))" y2="\##(fmt(top + plotH + 5))" stroke="#444"/>"##
            svg += ##"<text class="tick" x="\##(fmt(px(tick)))" y="\##(fmt(top + plotH + 18))" font-size="11" text-anchor="middle" fill="#333">\##(label(tick))</text>"##
        }
        let yTicks: [Double] = logarithmic
            ? stride(from: tyMin, through: tyMax, by: max(1, ((tyMax - tyMin) / 6).rounded(.up))).map { pow10($0) }
            : niceTicks(yMin, yMax, count: 6)
        for tick in yTicks {
            svg += ##"<line x1="\##(fmt(left))" y1="\##(fmt(py(tick)))" x2="\##(fmt(left + plotW))" y2="\##(fmt(py(tick)))" stroke="#e6e6e6"/>"##
            svg += ##"<text class="tick" x="\##(fmt(left - 6))" y="\##(fmt(py(tick) + 4))" font-size="11" text-anchor="end" fill="#333">\##(label(tick))</text>"##
        }
        svg += ##"<text class="axis-label" x="\##(fmt(left + plotW / 2))" y="\##(fmt(height - 10))" font-size="12" text-anchor="middle" fill="#222">\##(escape(xLabel))</text>"##
        svg += ##"<text class="axis-label" x="16" y="\##(fmt(top + plotH / 2))" font-size="12" text-anchor="middle" fill="#222" transform="rotate(-90 16 \##(fmt(top + plotH / 2)))">\##(escape(yLabel))</text>"##
        // Reference lines.
        for (i, ref) in references.enumerated() where ref.y.isFinite && (!logarithmic || ref.y > 0) {
            let color = i == 0 ? "#000000" : "#888888"
            let dash = Self.referenceDashes[i % Self.referenceDashes.count]
            svg += ##"<line class="reference" x1="\##(fmt(left))" y1="\##(fmt(py(ref.y)))" x2="\##(fmt(left + plotW))" y2="\##(fmt(py(ref.y)))" stroke="\##(color)" stroke-dasharray="\##(dash)" stroke-width="1.2"><title>\##(escape(ref.name))</title></line>"##
            // Labelled at its end, inside the plot.
            svg += ##"<text class="reference-label" x="\##(fmt(left + plotW - 4))" y="\##(fmt(py(ref.y) - 3))" font-size="10" text-anchor="end" fill="\##(color)">\##(escape(ref.name))</text>"##
        }
        // Series.
        for (i, s) in series.enumerated() {
            let color = Self.palette[i % Self.palette.count]
            let points = Self.thinned(s.points.filter { $0.y.isFinite && (!logarithmic || $0.y > 0) }, limit: maximumPoints)
                .map { "\(fmt(px($0.x))),\(fmt(py($0.y)))" }.joined(separator: " ")
            svg += ##"<polyline class="series" data-name="\##(escape(s.name))" fill="none" stroke="\##(color)" stroke-width="1.8" points="\##(points)"/>"##
        }
        // Legend.
        var ly = top + 4
        svg += ##"<g class="legend">"##
        for (i, s) in series.enumerated() {
            let color = Self.palette[i % Self.palette.count]
            svg += ##"<rect x="\##(fmt(left + plotW + 14))" y="\##(fmt(ly))" width="14" height="3" fill="\##(color)"/><text x="\##(fmt(left + plotW + 34))" y="\##(fmt(ly + 5))" font-size="11" fill="#222">\##(escape(s.name))</text>"##
            ly += 16
        }
        for (i, ref) in references.enumerated() {
            let color = i == 0 ? "#000000" : "#888888"
            svg += ##"<line x1="\##(fmt(left + plotW + 14))" y1="\##(fmt(ly + 2))" x2="\##(fmt(left + plotW + 28))" y2="\##(fmt(ly + 2))" stroke="\##(color)" stroke-dasharray="\##(Self.referenceDashes[i % Self.referenceDashes.count])"/><text x="\##(fmt(left + plotW + 34))" y="\##(fmt(ly + 5))" font-size="11" fill="#222">\##(escape(ref.name))</text>"##
            ly += 16
        }
        svg += "</g></svg>"
        return svg
    }
}

func pow10(_ e: Double) -> Double { pow(10, e) }

func niceTicks(_ lo: Double, _ hi: Double, count: Int) -> [Double] {
    guard hi > lo, lo.isFinite, hi.isFinite else { return [lo] }
    let raw = (hi - lo) / Double(count)
    let magnitude = pow10((log10(raw)).rounded(.down))
    let step = [1.0, 2.0, 2.5, 5.0, 10.0].map { $0 * magnitude }.first { $0 >= raw } ?? raw
    var ticks: [Double] = []
    var t = (lo / step).rounded(.up) * step
    while t <= hi + step * 1e-9 && ticks.count < 50 {
        ticks.append(abs(t) < step * 1e-9 ? 0 : t)
        t += step
    }
    return ticks
}

func label(_ v: Double) -> String {
    if v == 0 { return "0" }
    let a = abs(v)
    if a >= 1e6 || a < 1e-3 {
        let e = (log10(a)).rounded(.down)
        let m = v / pow10(e)
        return trimmed(m, 2) + "e" + String(Int(e))
    }
    if a >= 100 { return String(Int(v.rounded())) }
    return trimmed(v, a >= 10 ? 1 : 3)
}

func trimmed(_ v: Double, _ digits: Int) -> String {
    var s = fmt(v, digits)
    if s.contains(".") {
        while s.hasSuffix("0") { s.removeLast() }
        if s.hasSuffix(".") { s.removeLast() }
    }
    return s
}

/// Fixed-point formatting for SVG and tables; non-finite values (never drawn) print as 0.
func fmt(_ v: Double, _ digits: Int = 1) -> String {
    v.isFinite ? Format.fixed(v, decimals: digits) : "0"
}

func escape(_ s: String) -> String {
    var out = ""
    for c in s {
        switch c {
        case "&": out += "&amp;"
        case "<": out += "&lt;"
        case ">": out += "&gt;"
        case "\"": out += "&quot;"
        default: out.append(c)
        }
    }
    return out
}
