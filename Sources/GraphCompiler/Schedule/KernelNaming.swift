import TensorGraph

/// Kernel names: a product after the caller buffer it reads or writes, a loop after its DSL scope.
extension FusionPlan {
    /// A product named after the caller's buffers it touches: the weight a forward product
    /// reads (`wq`), else the buffer it writes (`grad_wq`), else the weight whose input's
    /// gradient it computes (`wq_grad_in`); nil for products between activations (attention),
    /// which keep their scope's name.
    func productName(_ k: Kernel, gradient: Bool) -> String? {
        let mm = node(matmulNode(of: k.root))
        // (a quantized product's third operand is its weight's scales: named after the weight)
        let weight = mm.inputs.prefix(2).reversed().lazy.compactMap { input -> String? in
            guard let base = self.stridedView(input)?.base, case .param(let name) = self.node(base).op else { return nil }
            return name
        }.first
        if let weight, !gradient { return weight }
        if case .external(let out)? = storage[k.root] { return out }
        if case .writeSlice = node(k.root).op, case .input(let target) = node(node(k.root).inputs[0]).op { return target }
        return weight.map { $0 + "_grad_in" }
    }

    func kernelName(_ i: Int, _ k: Kernel) -> String {
        let scopes = k.covered.map { node($0).scope }.filter { !$0.isEmpty }
        let leaf = scopes.map { s -> String in
            let parts = s.split(separator: "/").map(String.init)
            guard let last = parts.last else { return "" }
            return last == "grad" && parts.count > 1 ? parts[parts.count - 2] + "_grad" : last
        }
        var counts: [String: Int] = [:]
        for s in leaf { counts[s, default: 0] += 1 }
        let top = counts.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }.first?.key
        if k.kind == .matmul, let product = productName(k, gradient: top?.hasSuffix("grad") ?? false) {
            return [program.name, "k\(i)", product].joined(separator: "_")
        }
        if k.kind == .attention {
            return [program.name, "k\(i)", AttentionLowering(plan: self, kernel: k, buffer: { _ in "" }).title].joined(separator: "_")
        }
        let what = top ?? node(k.root).op.name
        let opName = k.kind == .matmul ? "matmul" : (k.kind == .scatterAdd ? "scatter_add" : nil)
        var parts = [program.name, "k\(i)", what]
        if let opName, opName != what { parts.append(opName) }
        return parts.joined(separator: "_").replacingOccurrences(of: "-", with: "_")
    }
}
