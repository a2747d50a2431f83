import TensorGraph

/// Every program family the package compiles, in emission order.
public enum GraphFamilies {
    public static let names = ["llama", "llama_train", "llama_dpo", "bench"]

    public static func all() throws -> [(name: String, programs: [Program])] {
        [("llama", try LlamaPrograms.all()), ("llama_train", try LlamaTrainingPrograms.all()),
         ("llama_dpo", try LlamaDPOPrograms.all()),
         ("bench", try BenchPrograms.all())]
    }
}
