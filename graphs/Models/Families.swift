import TensorGraph

/// Every program family the package compiles, in emission order.
public enum GraphFamilies {
    public static let names = ["llama"]

    public static func all() throws -> [(name: String, programs: [Program])] {
        [("llama", try LlamaPrograms.all())]
    }
}
