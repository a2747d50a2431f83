import Foundation

/// The encoder behind every `--json` report of the command line (`eval`, `doctor`, `bench`).
///
/// One object per report, keys sorted, `/` not escaped (`"logps/chosen"`). JSON has no literal for a non-finite number, so NaN and
/// ±infinity (a diverged loss, a perplexity that overflowed) are written as the strings
/// `"nan"`, `"inf"` and `"-inf"`, the words the text reports print; the output always parses.
public enum JSONOutput {
    /// The strings that stand for NaN, +∞ and −∞.
    public static let nan = "nan", infinity = "inf", negativeInfinity = "-inf"

    /// A fresh encoder with these settings.
    public static func encoder() -> JSONEncoder {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        e.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: infinity, negativeInfinity: negativeInfinity, nan: nan)
        return e
    }

    /// `value` as one line of JSON.
    public static func string<T: Encodable>(_ value: T) throws -> String {
        String(decoding: try encoder().encode(value), as: UTF8.self)
    }
}
