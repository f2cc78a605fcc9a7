import PlexusCore
import PlexusLearning
import Testing

/// The payload of a site's signed statistics: its schema and statistics, decoded as hostile bytes.
@Suite struct SiteSummaryTests {
    func summary(count: Double = 10, mean: [Double] = [1, 2], ssd: [Double] = [3, 4]) -> SiteSummary {
        var stats = FeatureStatistics(dimension: mean.count)
        stats.count = count
        stats.mean = mean
        stats.sumOfSquaredDeviations = ssd
        return SiteSummary(features: (0..<mean.count).map { "f\($0)" }, targets: ["label"], statistics: stats)
    }

    @Test func roundTrips() throws {
        let s = summary()
        #expect(try SiteSummary(decoding: s.encoded()) == s)
    }

    @Test func everyTruncationIsRefused() {
        let bytes = summary().encoded()
        for length in 0..<bytes.count {
            #expect(throws: SiteSummary.Error.self) { _ = try SiteSummary(decoding: Array(bytes.prefix(length))) }
        }
        #expect(throws: SiteSummary.Error.self) { _ = try SiteSummary(decoding: bytes + [0]) }
    }

    /// The red team's statistics: a count of 2⁶³, means of 1e300, NaN means, negative deviations.
    @Test func implausibleStatisticsAreRefusedWithTheirReason() {
        func reason(_ s: SiteSummary) -> Reason? {
            do { _ = try SiteSummary(decoding: s.encoded()); return nil } catch { return error.reason }
        }
        var huge = summary().encoded()
        // The count field sits right before the means: overwrite it with 2⁶³.
        let countOffset = huge.count - 8 * 4 - 8
        for i in 0..<8 { huge[countOffset + i] = i == 7 ? 0x80 : 0 }
        #expect(throws: SiteSummary.Error.self) { _ = try SiteSummary(decoding: huge) }
        do { _ = try SiteSummary(decoding: huge) } catch { #expect(error.reason == .outOfRange) }
        #expect(reason(summary(mean: [1e300, 0])) == .implausible)
        #expect(reason(summary(mean: [.nan, 0])) == .nonFinite)
        #expect(reason(summary(ssd: [-1, 0])) == .implausible)
        #expect(reason(summary(ssd: [.infinity, 0])) == .nonFinite)
        #expect(reason(summary()) == nil)
    }

    @Test func schemaDifferencesNameTheColumns() {
        let mine = SiteSummary(features: ["age", "size"], targets: ["label"], statistics: FeatureStatistics(dimension: 2))
        let extra = SiteSummary(features: ["age", "grade", "size"], targets: ["label"], statistics: FeatureStatistics(dimension: 3))
        let lacking = SiteSummary(features: ["age"], targets: ["label"], statistics: FeatureStatistics(dimension: 1))
        let target = SiteSummary(features: ["age", "size"], targets: ["outcome"], statistics: FeatureStatistics(dimension: 2))
        #expect(mine.schemaDifference(from: mine) == nil)
        #expect(mine.schemaDifference(from: extra) == "has column 'grade' that this site lacks")
        #expect(mine.schemaDifference(from: lacking) == "lacks column 'size'")
        #expect(mine.schemaDifference(from: target) == "targets outcome where this site has label")
    }
}
