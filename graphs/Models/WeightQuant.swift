import TensorGraph

/// Weight-only quantization of the projections: group-wise symmetric absmax scales, no zero
/// point (`value = q · scale` of its group of `G` values along a row). Norm weights and the
/// embedding table stay f32; the output projection (`lm_head`) is `q8_0`, or `q4_0` in the `_h4`
/// programs (`decode_q4_h4`).
///
/// A quantized weight `w` `[out, in]` is two parameters: `w` (dtype `q8` or `q4`) of rows padded
/// to a whole number of groups (`[out, ⌈in / G⌉·G]`, the padding quantized from zeros and never
/// read) and `w_scales` (f32, `[out, ⌈in / G⌉]`); a row's last group is short when `G` does not
/// divide it (stories260K's hidden size 172). The group counts per row are sizes of their own —
/// `GD`, `GF` for rows of length `D`, `F` — and so are the padded lengths in units of 32 —
/// `RD`, `RF` — so one compiled program serves every group size (`G = 32·RD / GD`).
public enum WeightQuant: String, CaseIterable, Sendable {
    case q8_0, q4_0

    /// The stored value type.
    public var dtype: DType { self == .q8_0 ? .q8 : .q4 }
    /// The suffix of the programs that read weights of this type (`decode_q8`).
    public var programSuffix: String { self == .q8_0 ? "q8" : "q4" }
    /// Groups per row of length `D`.
    public static let groupsPerDim = Dim.sym("GD")
    /// Groups per row of length `F`.
    public static let groupsPerHidden = Dim.sym("GF")
    /// A padded row of length `D`, in units of 32 values.
    public static let paddedPerDim = Dim.sym("RD")
    /// A padded row of length `F`, in units of 32 values.
    public static let paddedPerHidden = Dim.sym("RF")
    /// What a program's name adds for its output matrix's type: nothing for `q8_0`, `_h4` for `q4_0`.
    public static func headSuffix(_ head: WeightQuant) -> String { head == .q8_0 ? "" : "_h4" }
    /// The scales' name of a quantized weight.
    public static func scalesName(_ weight: String) -> String { "\(weight)_scales" }

    /// The group-count size of rows of length `n` (`D` or `F`).
    static func groups(_ n: Dim) -> Dim { n == LlamaDims.hidden ? groupsPerHidden : groupsPerDim }
    /// The padded length of rows of length `n` (`32·RD` or `32·RF`).
    static func padded(_ n: Dim) -> Dim { Dim(32) * (n == LlamaDims.hidden ? paddedPerHidden : paddedPerDim) }
}
