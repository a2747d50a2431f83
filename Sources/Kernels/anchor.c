// Compiled kernels come from the KernelGen plugin; this header only anchors the target.
