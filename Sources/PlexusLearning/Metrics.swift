#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Binary classification metrics at a threshold, matching scikit-learn's definitions: a row is
/// predicted positive when its probability is > threshold (scikit-learn's `predict` for logistic
/// regression: decision value > 0); precision, recall and F1 are 0 when undefined (`zero_division=0`).
public struct ClassificationMetrics: Sendable, Hashable, Codable {
    public var count: Int
    public var positives: Int
    public var truePositives: Int
    public var falsePositives: Int
    public var trueNegatives: Int
    public var falseNegatives: Int
    public var accuracy: Double
    public var precision: Double
    public var recall: Double
    public var f1: Double
    /// Area under the ROC curve; ties in the scores count one half (`roc_auc_score`). NaN with one class.
    public var rocAUC: Double
    /// Mean log-loss with probabilities clipped to [ε, 1 − ε], ε = Double machine epsilon (`log_loss`).
    public var logLoss: Double

    public init(labels: [Float], probabilities: [Double], threshold: Double = 0.5) {
        precondition(labels.count == probabilities.count, "one probability per label")
        var tp = 0, fp = 0, tn = 0, fn = 0
        for (y, p) in zip(labels, probabilities) {
            let predicted = p > threshold
            switch (y == 1, predicted) {
            case (true, true): tp += 1
            case (false, true): fp += 1
            case (false, false): tn += 1
            case (true, false): fn += 1
            }
        }
        count = labels.count
        positives = tp + fn
        truePositives = tp
        falsePositives = fp
        trueNegatives = tn
        falseNegatives = fn
        accuracy = count > 0 ? Double(tp + tn) / Double(count) : .nan
        precision = tp + fp > 0 ? Double(tp) / Double(tp + fp) : 0
        recall = tp + fn > 0 ? Double(tp) / Double(tp + fn) : 0
        f1 = 2 * tp + fp + fn > 0 ? Double(2 * tp) / Double(2 * tp + fp + fn) : 0
        rocAUC = Self.rocAUC(labels: labels, scores: probabilities)
        logLoss = Self.logLoss(labels: labels, probabilities: probabilities)
    }

    /// Exact, tie-aware ROC AUC: the Mann–Whitney statistic with mid-ranks, O(n log n).
    public static func rocAUC(labels: [Float], scores: [Double]) -> Double {
        let n = labels.count
        let order = (0..<n).sorted { scores[$0] < scores[$1] }
        var positiveRankSum = 0.0
        var positives = 0
        var i = 0
        while i < n {
            var j = i
            while j + 1 < n && scores[order[j + 1]] == scores[order[i]] { j += 1 }
            let midRank = Double(i + j) / 2 + 1
            for k in i...j where labels[order[k]] == 1 {
                positiveRankSum += midRank
                positives += 1
            }
            i = j + 1
        }
        let negatives = n - positives
        guard positives > 0 && negatives > 0 else { return .nan }
        let p = Double(positives)
        return (positiveRankSum - p * (p + 1) / 2) / (p * Double(negatives))
    }

    public static func logLoss(labels: [Float], probabilities: [Double]) -> Double {
        guard !labels.isEmpty else { return .nan }
        let eps = Double.ulpOfOne
        var sum = 0.0
        for (y, p) in zip(labels, probabilities) {
            let q = min(max(p, eps), 1 - eps)
            sum -= y == 1 ? log(q) : log(1 - q)
        }
        return sum / Double(labels.count)
    }
}

/// Survival metrics: Harrell's C-index as lifelines' `concordance_index` computes it.
public struct SurvivalMetrics: Sendable, Hashable, Codable {
    public var count: Int
    public var events: Int
    /// Harrell's C: (concordant + ½·tied) / comparable pairs.
    public var concordance: Double
    public var comparablePairs: Int
    public var concordantPairs: Int
    public var tiedPairs: Int

    /// - Parameter risks: predicted log-risks (higher = earlier event); the C-index uses −risk as
    ///   lifelines' predicted survival score.
    public init(times: [Double], events: [Float], risks: [Double]) {
        let c = Self.concordance(times: times, scores: risks.map { -$0 }, events: events)
        count = times.count
        self.events = events.reduce(0) { $0 + ($1 != 0 ? 1 : 0) }
        concordance = c.index
        comparablePairs = c.pairs
        concordantPairs = c.concordant
        tiedPairs = c.tied
    }

    /// lifelines' `concordance_index(event_times, predicted_scores, event_observed)`.
    ///
    /// A pair (i, j) is comparable when i had the event and T_i < T_j, or T_i = T_j and j is
    /// censored; two events at the same time are not comparable. It is concordant when
    /// score_i < score_j (the earlier event has the lower predicted survival), tied when equal
    /// (counted one half). O(n log n): rows in time order against a Fenwick tree of the scores of
    /// the events seen so far.
    public static func concordance(times: [Double], scores: [Double], events: [Float])
        -> (index: Double, concordant: Int, tied: Int, pairs: Int)
    {
        let n = times.count
        precondition(scores.count == n && events.count == n, "one score and one event per time")
        let died = (0..<n).filter { events[$0] != 0 }.sorted { times[$0] < times[$1] }
        let censored = (0..<n).filter { events[$0] == 0 }.sorted { times[$0] < times[$1] }
        var values = died.map { scores[$0] }
        values.sort()
        var unique: [Double] = []
        for v in values where unique.last != v { unique.append(v) }
        var tree = [Int](repeating: 0, count: unique.count + 1)
        var poolSize = 0
        func prefix(_ k: Int) -> Int {  // number of pool values among the k smallest unique values
            var k = k
            var s = 0
            while k > 0 {
                s += tree[k]
                k -= k & -k
            }
            return s
        }
        func lowerBound(_ x: Double) -> Int {
            var lo = 0
            var hi = unique.count
            while lo < hi {
                let mid = (lo + hi) / 2
                if unique[mid] < x { lo = mid + 1 } else { hi = mid }
            }
            return lo
        }
        var concordant = 0
        var tied = 0
        var pairs = 0
        func handle(_ group: ArraySlice<Int>) {
            pairs += poolSize * group.count
            for i in group {
                let lb = lowerBound(scores[i])
                let less = prefix(lb)
                var equal = 0
                if lb < unique.count && unique[lb] == scores[i] { equal = prefix(lb + 1) - less }
                concordant += less
                tied += equal
            }
        }
        var d = 0
        var c = 0
        while d < died.count || c < censored.count {
            if d < died.count && (c >= censored.count || times[died[d]] <= times[censored[c]]) {
                var end = d
                while end < died.count && times[died[end]] == times[died[d]] { end += 1 }
                handle(died[d..<end])
                for i in died[d..<end] {
                    var k = lowerBound(scores[i]) + 1
                    while k <= unique.count {
                        tree[k] += 1
                        k += k & -k
                    }
                    poolSize += 1
                }
                d = end
            } else {
                var end = c
                while end < censored.count && times[censored[end]] == times[censored[c]] { end += 1 }
                handle(censored[c..<end])
                c = end
            }
        }
        let index = pairs > 0 ? (Double(concordant) + 0.5 * Double(tied)) / Double(pairs) : .nan
        return (index, concordant, tied, pairs)
    }
}

/// The metrics of a parameter vector on a dataset: classification or survival metrics, and the
/// model's mean data loss (no penalty).
public struct Evaluation: Sendable, Hashable, Codable {
    public var task: String
    public var count: Int
    /// Mean data loss: log-loss of the model, or −(1/n)·log partial likelihood.
    public var loss: Double
    public var classification: ClassificationMetrics?
    public var survival: SurvivalMetrics?

    public init(model: any Model, parameters: [Float], data: Dataset) {
        task = data.task.rawValue
        count = data.count
        loss = model.loss(parameters: parameters, batch: data)
        let outputs = model.predict(parameters: parameters, batch: data).map(Double.init)
        switch data.task {
        case .classification:
            classification = ClassificationMetrics(labels: data.labels, probabilities: outputs)
        case .survival:
            survival = SurvivalMetrics(times: data.times, events: data.events, risks: outputs)
        }
    }

    /// The headline number: ROC AUC for classification, the C-index for survival.
    public var headline: Double { classification?.rocAUC ?? survival?.concordance ?? .nan }
}
