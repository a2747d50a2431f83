import KernelRuntime; print(testAdd())
