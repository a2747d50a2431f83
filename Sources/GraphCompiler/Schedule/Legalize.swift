import TensorGraph

extension FusionPlan {
    /// The plan of `program` in which every kernel can be lowered. `lower` is the lowering's
    /// own check (a trial lowering of one kernel): a value a kernel cannot compute where it is
    /// read — an operand BLAS cannot stride, a reduction read off its row — is reported as
    /// `NeedsRealization`, materialized, and the program planned again, until none is left.
    /// The emitter then renders a plan that is already legal.
    static func legal(_ program: Program, smallSizes: Set<String> = [], lower: (FusionPlan, Kernel) throws -> Void) throws -> FusionPlan {
        var plan = try FusionPlan(program, smallSizes: smallSizes)
        for _ in 0...program.nodes.count {
            do {
                for k in plan.kernels { try lower(plan, k) }
                return plan
            } catch let e as NeedsRealization {
                plan = try FusionPlan(program, smallSizes: smallSizes, extraRealized: plan.realized.union([e.node]))
            }
        }
        throw GraphError("program '\(program.name)': could not find a legal schedule")
    }
}
