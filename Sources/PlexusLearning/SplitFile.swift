import Foundation

/// A split file of the evaluation protocol (`splits/<dataset>_seed<s>.json`): 0-based data-row
/// indices for the `test` rows, the `train` rows, and the training rows cut into `hospitals` (sites).
public struct SplitFile: Sendable, Hashable, Codable {
    public var test: [Int]
    public var train: [Int]
    public var hospitals: [[Int]]

    public init(test: [Int], train: [Int], hospitals: [[Int]]) {
        self.test = test
        self.train = train
        self.hospitals = hospitals
    }

    /// Reads and checks a split file: indices must be ≥ 0 and, when `rowCount` is given, below it.
    public static func read(path: String, rowCount: Int? = nil) throws(DataError) -> SplitFile {
        let bytes = try CSV.readFile(path: path, maximumBytes: 64 << 20)
        let split: SplitFile
        do {
            split = try JSONDecoder().decode(SplitFile.self, from: Data(bytes))
        } catch {
            throw DataError(.badSplit, file: path, "not a split file (expected JSON with test, train and hospitals): \(error)")
        }
        let limit = rowCount ?? Int.max
        var lists = [("test", split.test), ("train", split.train)]
        for (h, rows) in split.hospitals.enumerated() { lists.append(("hospitals[\(h)]", rows)) }
        for (name, indices) in lists {
            if let bad = indices.first(where: { $0 < 0 || $0 >= limit }) {
                throw DataError(.badSplit, file: path, "\(name) holds row index \(bad), outside 0..<\(limit)")
            }
        }
        return split
    }
}
