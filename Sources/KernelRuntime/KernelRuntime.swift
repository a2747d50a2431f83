import Kernels
public func testAdd() -> Float { var a: [Float] = [1,2]; let b: [Float] = [3,4]; k_add(&a, b, 2); return a[0] }
