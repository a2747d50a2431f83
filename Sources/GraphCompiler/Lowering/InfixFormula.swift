import TensorGraph

/// The math a fused loop computes, in infix, for the comment over its kernel:
/// `t3 = carry0 · rsqrt(Σ(carry0²) / D + norm_eps) · attn_norm`. Views are indexing and
/// left out; values stored in buffers appear by their buffer's name; a reduction over the last
/// axis is `Σ(…)` or `max(…)`. Nil when the formula would be too long to read.
struct InfixFormula {
    let plan: FusionPlan
    let buffer: (Int) -> String
    /// Nodes the kernel itself computes (its roots are computed, never named by buffer).
    let computed: Set<Int>
    static let maxLength = 120

    /// `out = formula` for each value the kernel stores, joined by `; `, or nil.
    static func comment(_ plan: FusionPlan, _ k: Kernel, buffer: @escaping (Int) -> String) -> String? {
        let f = InfixFormula(plan: plan, buffer: buffer, computed: Set(k.roots))
        var parts: [String] = []
        for root in k.roots {
            let n = plan.node(root)
            let (target, value): (String, Int) = {
                if case .writeSlice = n.op { return (buffer(root), n.inputs[1]) }
                return (buffer(root), root)
            }()
            guard let e = f.expression(value, budget: maxLength) else { return nil }
            parts.append("\(target) = \(e.text)")
        }
        let text = parts.joined(separator: "; ")
        return text.count <= maxLength * 2 ? text : nil
    }

    private struct Expr { var text: String; var atomic: Bool }

    private func name(_ id: Int) -> String? {
        let n = plan.node(id)
        switch n.op {
        case .constant(let v): return v == v.rounded() && abs(v) < 1e6 ? String(Int(v)) : "\(Float(v))"
        case .size(let d): return d.cExpr
        case .iota(let axis): return "i\(axis)"
        default: break
        }
        if !computed.contains(id) && (plan.realized.contains(id) || plan.isBufferLeaf(id)) { return buffer(id) }
        return nil
    }

    /// The expression of node `id`, or nil when it passes `budget` characters.
    private func expression(_ id: Int, budget: Int) -> Expr? {
        if budget <= 0 { return nil }
        if let leaf = name(id) { return Expr(text: leaf, atomic: !leaf.contains(where: { "+-*/ ".contains($0) })) }
        let n = plan.node(id)
        func arg(_ i: Int) -> Expr? { expression(n.inputs[i], budget: budget - 4) }
        func wrap(_ e: Expr) -> String { e.atomic ? e.text : "(\(e.text))" }
        switch n.op {
        case .reshape, .permute, .expand, .slice, .stopGradient, .cast:
            return arg(0)
        case .reuse:
            return expression(n.inputs[n.inputs.count - 1], budget: budget)
        case .unary(let u):
            guard let x = arg(0) else { return nil }
            switch u {
            case .neg: return Expr(text: "-" + wrap(x), atomic: false)
            case .recip: return Expr(text: "1 / " + wrap(x), atomic: false)
            default: return Expr(text: "\(u.rawValue)(\(x.text))", atomic: true)
            }
        case .binary(let b):
            guard let x = arg(0), let y = arg(1) else { return nil }
            let text: String
            switch b {
            case .add: text = "\(x.text) + \(y.text)"
            case .sub: text = "\(x.text) - \(wrap(y))"
            case .mul: text = x.text == y.text ? "\(wrap(x))²" : "\(wrap(x)) · \(wrap(y))"
            case .div: text = "\(wrap(x)) / \(wrap(y))"
            case .max, .min, .pow: return Expr(text: "\(b.rawValue)(\(x.text), \(y.text))", atomic: true)
            case .cmplt: text = "[\(x.text) < \(y.text)]"
            case .cmple: text = "[\(x.text) ≤ \(y.text)]"
            case .cmpeq: text = "[\(x.text) = \(y.text)]"
            }
            let out = Expr(text: text, atomic: text.hasPrefix("[") || text.hasSuffix("²") && x.atomic)
            return out.text.count <= budget ? out : nil
        case .select:
            guard let c = arg(0), let a = arg(1), let b = arg(2) else { return nil }
            return Expr(text: "\(c.text) ? \(a.text) : \(b.text)", atomic: false)
        case .random:
            guard let k = arg(0) else { return nil }
            return Expr(text: "uniform(\(k.text), i)", atomic: true)
        case .reduce(let r):
            guard let x = arg(0) else { return nil }
            return Expr(text: r == .sum ? "Σ(\(x.text))" : "max(\(x.text))", atomic: true)
        case .gather:
            guard let ids = arg(1) else { return nil }
            return Expr(text: "\(buffer(plan.gatherTable(n.inputs[0]) ?? n.inputs[0]))[\(ids.text)]", atomic: true)
        default:
            return nil
        }
    }
}
