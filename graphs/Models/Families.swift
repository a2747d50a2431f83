import TensorGraph

/// Every program family the package compiles, in emission order.
public enum GraphFamilies {
    public static let names = ["llama", "llama_train", "bench"]

    public static func all() throws -> [(name: String, programs: [Program])] {
        [("llama", try LlamaPrograms.all()), ("llama_train", try LlamaTrainingPrograms.all()),
         ("bench", try BenchPrograms.all())]
    }
}
