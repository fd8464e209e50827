/// Log-bucket latency histogram (HdrHistogram-like), values in nanoseconds.
///
/// Values below 256 have a bucket each; above, every power-of-two range [2^p, 2^(p+1)) is cut into
/// 128 equal sub-buckets, so a bucket is at most 1/128 (< 0.8 %) of its values wide. Percentiles
/// report the bucket's midpoint; min, max and mean are exact. Fixed size (7,424 counters), no
/// allocation per record, mergeable across threads.
struct Histogram: Sendable {
    private static let subBits = 7
    private static let subCount = 1 << subBits  // 128
    private static let linearLimit = 2 * subCount  // values < 256 are exact
    private static let bucketCount = linearLimit + (64 - subBits - 1) * subCount

    private var counts: [UInt64]
    private(set) var total: UInt64 = 0
    private(set) var sum: Double = 0
    private(set) var minValue: Int64 = .max
    private(set) var maxValue: Int64 = 0

    init() {
        counts = [UInt64](repeating: 0, count: Self.bucketCount)
    }

    @inline(__always)
    private static func index(_ v: UInt64) -> Int {
        if v < UInt64(linearLimit) { return Int(v) }
        let p = 63 - v.leadingZeroBitCount  // >= 8
        let shift = p - subBits  // >= 1
        let mantissa = Int(v >> UInt64(shift))  // [128, 256)
        return linearLimit + (shift - 1) * subCount + (mantissa - subCount)
    }

    /// Lower bound and width of bucket `i`.
    private static func range(_ i: Int) -> (low: Double, width: Double) {
        if i < linearLimit { return (Double(i), 1) }
        let shift = (i - linearLimit) / subCount + 1
        let mantissa = (i - linearLimit) % subCount + subCount
        let scale = Double(UInt64(1) << UInt64(shift))
        return (Double(mantissa) * scale, scale)
    }

    @inline(__always)
    mutating func record(_ value: Int64) {
        let v = value < 0 ? 0 : value
        counts[Self.index(UInt64(v))] &+= 1
        total &+= 1
        sum += Double(v)
        if v < minValue { minValue = v }
        if v > maxValue { maxValue = v }
    }

    mutating func merge(_ other: Histogram) {
        guard other.total > 0 else { return }
        for i in 0..<counts.count where other.counts[i] != 0 { counts[i] &+= other.counts[i] }
        total &+= other.total
        sum += other.sum
        minValue = min(minValue, other.minValue)
        maxValue = max(maxValue, other.maxValue)
    }

    /// The value at quantile `q` (0...1), nanoseconds; 0 when empty.
    func percentile(_ q: Double) -> Double {
        guard total > 0 else { return 0 }
        let rank = max(1, UInt64((q * Double(total)).rounded(.up)))
        var seen: UInt64 = 0
        for i in 0..<counts.count {
            seen &+= counts[i]
            if seen >= rank {
                let (low, width) = Self.range(i)
                let mid = width <= 1 ? low : low + width / 2
                return min(max(mid, Double(minValue)), Double(maxValue))
            }
        }
        return Double(maxValue)
    }

    var mean: Double { total == 0 ? 0 : sum / Double(total) }
}
