#if canImport(Glibc)
import Glibc
#endif
import PlexusLog

/// An interval plot as standalone SVG: one row per item, a point at its estimate and a line over
/// its 95% interval, a vertical reference line (1 for ratios, 0.5 for a C-index), on a linear or
/// logarithmic axis. The forest plot of hazard ratios, and the leave-one-centre-out C-indices.
public struct IntervalPlot {
    public struct Item {
        public var label: String
        public var estimate: Double
        /// nil: the point only (no interval, e.g. too few events).
        public var interval: (lower: Double, upper: Double)?
        public var annotation: String
        public init(label: String, estimate: Double, interval: (lower: Double, upper: Double)?, annotation: String) {
            self.label = label
            self.estimate = estimate
            self.interval = interval
            self.annotation = annotation
        }
    }

    public var title: String
    public var axisLabel: String
    public var items: [Item]
    public var reference: Double
    public var logarithmic: Bool
    public var width = 720.0

    public init(title: String, axisLabel: String, items: [Item], reference: Double, logarithmic: Bool) {
        self.title = title
        self.axisLabel = axisLabel
        self.items = items
        self.reference = reference
        self.logarithmic = logarithmic
    }

    public func render() -> String {
        let rowHeight = 22.0, top = 40.0, left = 170.0, right = 190.0
        let height = top + Double(max(items.count, 1)) * rowHeight + 50
        let plotWidth = width - left - right
        // Every finite positive (log) value shown, and the reference.
        var values = [reference]
        for item in items {
            values.append(item.estimate)
            if let i = item.interval { values += [i.lower, i.upper] }
        }
        values = values.filter { $0.isFinite && (!logarithmic || $0 > 0) }
        let t = { (v: Double) in logarithmic ? log10(v) : v }
        var low = values.map(t).min() ?? 0, high = values.map(t).max() ?? 1
        if high - low < 1e-9 { low -= 0.5; high += 0.5 }
        let pad = (high - low) * 0.06
        low -= pad
        high += pad
        func x(_ v: Double) -> Double {
            guard v.isFinite, !logarithmic || v > 0 else { return left }
            return left + (min(max(t(v), low), high) - low) / (high - low) * plotWidth
        }
        var svg = "<svg class=\"chart\" xmlns=\"http://www.w3.org/2000/svg\" width=\"\(fmt(width, 0))\" height=\"\(fmt(height, 0))\" viewBox=\"0 0 \(fmt(width, 0)) \(fmt(height, 0))\" font-family=\"Helvetica, Arial, sans-serif\" font-size=\"12\">\n"
        svg += "<rect width=\"100%\" height=\"100%\" fill=\"#fff\"/>\n"
        svg += "<text x=\"\(fmt(width / 2, 0))\" y=\"20\" text-anchor=\"middle\" font-size=\"14\" font-weight=\"bold\">\(escape(title))</text>\n"
        let bottom = top + Double(items.count) * rowHeight
        svg += "<line x1=\"\(fmt(x(reference), 1))\" y1=\"\(fmt(top - 6, 1))\" x2=\"\(fmt(x(reference), 1))\" y2=\"\(fmt(bottom, 1))\" stroke=\"#888\" stroke-dasharray=\"4 3\"/>\n"
        for (k, item) in items.enumerated() {
            let y = top + Double(k) * rowHeight + rowHeight / 2
            svg += "<text x=\"\(fmt(left - 8, 1))\" y=\"\(fmt(y + 4, 1))\" text-anchor=\"end\">\(escape(item.label))</text>\n"
            if let i = item.interval {
                svg += "<line x1=\"\(fmt(x(i.lower), 1))\" y1=\"\(fmt(y, 1))\" x2=\"\(fmt(x(i.upper), 1))\" y2=\"\(fmt(y, 1))\" stroke=\"#1f77b4\" stroke-width=\"2\"/>\n"
            }
            svg += "<rect x=\"\(fmt(x(item.estimate) - 4, 1))\" y=\"\(fmt(y - 4, 1))\" width=\"8\" height=\"8\" fill=\"\(item.interval == nil ? "#fff" : "#1f77b4")\" stroke=\"#1f77b4\"/>\n"
            svg += "<text x=\"\(fmt(width - right + 10, 1))\" y=\"\(fmt(y + 4, 1))\">\(escape(item.annotation))</text>\n"
        }
        // The axis: ticks at round values.
        svg += "<line x1=\"\(fmt(left, 1))\" y1=\"\(fmt(bottom + 4, 1))\" x2=\"\(fmt(left + plotWidth, 1))\" y2=\"\(fmt(bottom + 4, 1))\" stroke=\"#333\"/>\n"
        for tick in ticks(low, high) {
            let v = logarithmic ? pow(10, tick) : tick
            let px = left + (tick - low) / (high - low) * plotWidth
            svg += "<line x1=\"\(fmt(px, 1))\" y1=\"\(fmt(bottom + 4, 1))\" x2=\"\(fmt(px, 1))\" y2=\"\(fmt(bottom + 9, 1))\" stroke=\"#333\"/>\n"
            svg += "<text x=\"\(fmt(px, 1))\" y=\"\(fmt(bottom + 22, 1))\" text-anchor=\"middle\">\(tickLabel(v))</text>\n"
        }
        svg += "<text x=\"\(fmt(left + plotWidth / 2, 1))\" y=\"\(fmt(bottom + 40, 1))\" text-anchor=\"middle\">\(escape(axisLabel))</text>\n"
        return svg + "</svg>"
    }

    /// About five round ticks over [low, high] (in axis units: log10 for a log axis, where they
    /// are the 1-2-5 values of each decade, or every decade when there are many).
    func ticks(_ low: Double, _ high: Double) -> [Double] {
        if logarithmic {
            let decades = Int(floor(low))...Int(ceil(high))
            let steps: [Double] = decades.count > 4 ? [1] : [1, 2, 5]
            let candidates = decades.flatMap { d in steps.map { log10($0) + Double(d) } }.filter { $0 >= low - 1e-12 && $0 <= high + 1e-12 }
            if candidates.count >= 2 { return candidates }
        }
        let span = high - low
        let raw = span / 5
        let magnitude = pow(10, floor(log10(raw)))
        let step = [1.0, 2, 5, 10].map { $0 * magnitude }.first { $0 >= raw } ?? raw
        var out: [Double] = []
        var v = ceil(low / step) * step
        while v <= high + 1e-12 && out.count < 12 {
            out.append(v)
            v += step
        }
        return out
    }

    /// Three significant digits (at most four decimals).
    func tickLabel(_ v: Double) -> String {
        guard v != 0, v.isFinite else { return "0" }
        return fmt(v, min(4, max(0, 2 - Int(floor(log10(abs(v)))))))
    }
}

/// What `plexus report --inference` reads: the `inference` object of `plexus train --json` (or
/// that object alone) — the ratios and intervals of a forest plot.
public struct HazardRatios: Sendable, Decodable {
    public struct Coefficient: Sendable, Decodable {
        public var name: String
        public var ratio: Double
        public var lower: Double
        public var upper: Double
        public var p: Double
    }
    public var model: String
    public var ratioName: String
    public var coefficients: [Coefficient]

    private struct Wrapped: Decodable { var inference: HazardRatios }

    /// From the JSON of `plexus train --json` (its `inference`) or of the inference object.
    public init(json bytes: [UInt8]) throws {
        if let wrapped = try? PlexusJSON.decode(Wrapped.self, from: bytes) {
            self = wrapped.inference
            return
        }
        do { self = try PlexusJSON.decode(HazardRatios.self, from: bytes) } catch {
            throw ConvergenceLogReader.Error(description: "not the JSON of `plexus train --json` with inference (a Cox or logistic fit): \(error.description)")
        }
    }

    enum CodingKeys: String, CodingKey { case model, ratioName, coefficients }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        model = try c.decode(String.self, forKey: .model)
        ratioName = try c.decode(String.self, forKey: .ratioName)
        coefficients = try c.decode([Coefficient].self, forKey: .coefficients)
    }

    /// The forest plot: one row per covariate (logistic's intercept left out), ratio and interval
    /// on a log axis with the line of no effect at 1.
    public func plot() -> IntervalPlot {
        let shown = coefficients.filter { $0.name != "(intercept)" }
        return IntervalPlot(
            title: "\(ratioName == "HR" ? "Hazard" : "Odds") ratios per unit of each covariate, 95% Wald intervals (\(model))",
            axisLabel: "\(ratioName) (log scale)",
            items: shown.map { c in
                IntervalPlot.Item(
                    label: c.name, estimate: c.ratio, interval: (c.lower, c.upper),
                    annotation: "\(fmt(c.ratio, 3)) (\(fmt(c.lower, 3))–\(fmt(c.upper, 3))), p \(c.p < 0.001 ? "< 0.001" : fmt(c.p, 3))")
            },
            reference: 1, logarithmic: true)
    }
}

/// What `plexus report --loco` reads: the JSON of `plexus evaluate --loco --json`.
public struct LeaveOneCentreOutResults: Sendable, Decodable {
    public struct Interval: Sendable, Decodable {
        public var lower: Double
        public var upper: Double
    }
    public struct Score: Sendable, Decodable {
        public var concordance: Double?
        public var interval: Interval?
    }
    public struct Row: Sendable, Decodable {
        public var centre: String
        public var rows: Int
        public var events: Int
        public var pooled: Score
        public var decentralized: Score
    }
    public var dataset: String
    public var rows: [Row]

    public init(json bytes: [UInt8]) throws {
        do { self = try PlexusJSON.decode(LeaveOneCentreOutResults.self, from: bytes) } catch {
            throw ConvergenceLogReader.Error(description: "not the JSON of `plexus evaluate --loco --json`: \(error.description)")
        }
    }

    /// Each held-out centre's decentralized and pooled C-index, with its interval where it has one.
    public func plot() -> IntervalPlot {
        var items: [IntervalPlot.Item] = []
        for row in rows {
            for (kind, score) in [("decentralized", row.decentralized), ("pooled", row.pooled)] {
                guard let c = score.concordance else { continue }
                let interval = score.interval.map { ($0.lower, $0.upper) }
                items.append(IntervalPlot.Item(
                    label: "\(row.centre), \(kind)", estimate: c, interval: interval,
                    annotation: interval.map { "\(fmt(c, 3)) (\(fmt($0.0, 3))–\(fmt($0.1, 3)))" } ?? "\(fmt(c, 3)), \(row.events) events: no interval"))
            }
        }
        return IntervalPlot(
            title: "Held-out C-index per centre (leave one centre out), bootstrap 95% intervals", axisLabel: "Harrell's C",
            items: items, reference: 0.5, logarithmic: false)
    }

    /// The table beside the plot.
    public func table() -> String {
        var html = "<table class=\"loco\"><tr><th>held out</th><th>rows</th><th>events</th><th>pooled C (95% CI)</th><th>decentralized C (95% CI)</th></tr>\n"
        func cell(_ s: Score) -> String {
            guard let c = s.concordance else { return "—" }
            guard let i = s.interval else { return "\(fmt(c, 3)) (too few events)" }
            return "\(fmt(c, 3)) (\(fmt(i.lower, 3))–\(fmt(i.upper, 3)))"
        }
        for row in rows {
            html += "<tr><td>\(escape(row.centre))</td><td>\(row.rows)</td><td>\(row.events)</td><td>\(cell(row.pooled))</td><td>\(cell(row.decentralized))</td></tr>\n"
        }
        return html + "</table>"
    }
}
