import TensorGraph

/// Every program family the package compiles, in emission order.
public enum GraphFamilies {
    public static let names = ["llama", "llama_train", "llama_dpo", "bench", "attention"]
    /// Derived sizes the emitted kernels name (`const long D = 2*HD2*KVH*REP;`).
    public static let sizeNames = LlamaDims.named
    /// Sizes that count few rows: the batch (sequences, or DPO pairs).
    public static let smallSizes: Set<String> = ["B"]

    public static func all() throws -> [(name: String, programs: [Program])] {
        [("llama", try LlamaPrograms.all()), ("llama_train", try LlamaTrainingPrograms.all()),
         ("llama_dpo", try LlamaDPOPrograms.all()),
         ("bench", try BenchPrograms.all()), ("attention", try AttentionPrograms.all())]
    }
}
