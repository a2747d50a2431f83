import Foundation
let args = CommandLine.arguments
let out = args[2]
try FileManager.default.createDirectory(atPath: out + "/include", withIntermediateDirectories: true)
try "#pragma once\nvoid k_add(float *a, const float *b, long n);\n".write(toFile: out + "/include/llama_kernels.h", atomically: true, encoding: .utf8)
try "#include \"llama_kernels.h\"\n#include <cblas.h>\nvoid k_add(float *restrict a, const float *restrict b, long n) {\n#pragma omp parallel for\n for (long i=0;i<n;i++) a[i]+=b[i];\n cblas_saxpy(0,0,0,0,0,0);\n}\n".write(toFile: out + "/llama_kernels.c", atomically: true, encoding: .utf8)
