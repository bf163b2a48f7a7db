/// The median of `values` (the middle one of an odd count, the upper middle of an even
/// one): every bench reports medians over rounds, so one slow round (a neighbour's burst,
/// a TCG translation flush) does not move the result.
func median(_ values: [Double]) -> Double {
    precondition(!values.isEmpty, "a median needs at least one value")
    return values.sorted()[values.count / 2]
}

/// The ratio of the medians, `median(numerator) / median(denominator)`: how the benches
/// compare two sides measured in interleaved rounds (the typed API over its C baseline).
func ratioOfMedians(_ numerator: [Double], _ denominator: [Double]) -> Double {
    median(numerator) / median(denominator)
}
