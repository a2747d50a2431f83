import Foundation
import Kernels

/// Which matrix kernels run the products, on which CPU, and why (see `la_blas.c`).
///
/// The runtime reads the CPU's features before `main`, asks OpenBLAS for the best core it has
/// for them (AVX-512 + BF16 → Cooperlake, AVX-512 → SkylakeX, AVX2 + FMA → Haswell, AVX →
/// SandyBridge) and loads it; a user's own `OPENBLAS_CORETYPE` wins.
public struct MatrixKernels: Codable, Sendable, Equatable {
    /// CPU vendor id (`GenuineIntel`, `AuthenticAMD`, …).
    public var vendor: String
    /// The CPU's brand string.
    public var cpu: String
    /// Display family and model (CPUID leaf 1).
    public var family: Int, model: Int, stepping: Int
    /// Vector features present and enabled by the OS (`avx2`, `avx512f`, `avx512_bf16`, `amx_tile`, …).
    public var features: [String]
    /// `cpu features`, `OPENBLAS_CORETYPE` (the user's), or `OpenBLAS detection`.
    public var chosenBy: String
    /// The core asked of OpenBLAS (empty when OpenBLAS chose alone).
    public var requestedCore: String
    /// The core OpenBLAS runs (`openblas_get_corename`).
    public var core: String
    /// The widest vector ISA of that core's kernels: `avx512`, `avx2`, `avx`, `sse` or `unknown`.
    public var isa: String
    /// `openblas_get_config()`.
    public var library: String
    /// The shared object loaded.
    public var libraryPath: String
    /// Why no kernels could be loaded; empty when they were.
    public var error: String
    /// Whether the CPU has AVX-512 BF16, which every bf16 product needs (AMX or not).
    public var hasBF16: Bool { features.contains("avx512_bf16") }

    /// What runs a bf16 program's products: `amx` (AMX-BF16 tiles), `avx512_bf16` (`vdpbf16ps`)
    /// or `none` (no AVX-512 BF16: bf16 programs are refused).
    public var bf16Path: String
    /// Why the bf16 products are not on AMX (the CPU, the OS, or `LLAMA_ALIGN_AMX=0`); empty when they are.
    public var bf16Note: String

    /// The path of this process (loaded once, before `main`).
    public static var current: MatrixKernels { MatrixKernels(la_blas_info().pointee) }

    init(_ p: la_blas_path) {
        vendor = Self.string(p.vendor)
        cpu = Self.string(p.brand).trimmingCharacters(in: .whitespaces)
        family = Int(p.family); model = Int(p.model); stepping = Int(p.stepping)
        features = Self.featureNames(p.features)
        chosenBy = switch Int(p.source) {
        case LA_CORE_BY_USER: "OPENBLAS_CORETYPE"
        case LA_CORE_BY_FEATURES: "cpu features"
        default: "OpenBLAS detection"
        }
        requestedCore = Self.string(p.requested)
        core = Self.string(p.core)
        isa = String(cString: la_blas_core_isa(core))
        library = Self.string(p.config)
        libraryPath = Self.string(p.library)
        error = Self.string(p.error)
        let amx = la_bf16_amx() != 0
        bf16Path = amx ? "amx" : p.features & UInt32(LA_CPU_AVX512_BF16) != 0 ? "avx512_bf16" : "none"
        bf16Note = amx ? "" : String(cString: la_bf16_amx_reason())
    }

    /// True when the CPU and the OS allow the AMX-BF16 path (whatever `LLAMA_ALIGN_AMX` says).
    public static var amxAllowed: Bool { la_bf16_amx_allowed() != 0 }

    /// Puts the bf16 products on AMX tiles (`true`, only where `amxAllowed`) or on AVX-512 BF16
    /// for the whole process, between program calls (tests and benchmarks compare the two);
    /// returns whether AMX is now in use.
    @discardableResult
    public static func useAMX(_ on: Bool) -> Bool { la_bf16_set_amx(on ? 1 : 0) != 0 }

    /// The core this runtime asks for on a CPU with `features` (names as in `features`), or nil
    /// when it leaves the choice to OpenBLAS.
    public static func core(forFeatures features: [String]) -> String? {
        var bits: UInt32 = 0
        for i in 0..<Int(LA_CPU_FEATURE_COUNT) where features.contains(String(cString: la_cpu_feature_name(Int32(i)))) {
            bits |= 1 << UInt32(i)
        }
        return la_blas_core_for(bits).map { String(cString: $0) }
    }

    /// The widest vector ISA of an OpenBLAS core's kernels.
    public static func isa(ofCore core: String) -> String { String(cString: la_blas_core_isa(core)) }

    /// True when the kernels are a generic fallback below what the CPU has: SSE kernels on an
    /// AVX2 CPU, or, unless the user named the core, anything but AVX-512 kernels on an AVX-512 CPU.
    public var isGenericFallback: Bool {
        if features.contains("avx2"), !["avx2", "avx512"].contains(isa) { return true }
        if chosenBy != "OPENBLAS_CORETYPE", MatrixKernels.core(forFeatures: features).map(MatrixKernels.isa(ofCore:)) == "avx512" {
            return isa != "avx512"
        }
        return false
    }

    /// Two lines for reports: the CPU, then the kernels and why.
    public var summary: String {
        let cpuLine = String(format: "cpu: %@ (%@ family %d model %d stepping %d); features: %@",
                             cpu, vendor, family, model, stepping, features.joined(separator: " "))
        if !error.isEmpty { return cpuLine + "\nmatrix kernels: none — " + error }
        let why = chosenBy == "OPENBLAS_CORETYPE" ? "set by OPENBLAS_CORETYPE=\(requestedCore)"
            : chosenBy == "cpu features" ? "chosen from the cpu features" : "OpenBLAS's own detection"
        let mismatch = !requestedCore.isEmpty && requestedCore.lowercased() != core.lowercased()
            ? " (asked for \(requestedCore); OpenBLAS does not have it)" : ""
        return cpuLine + "\nmatrix kernels: OpenBLAS \(core) (\(isa)), \(why)\(mismatch); \(library) [\(libraryPath)]\n" + bf16Line
    }

    /// One line: what runs the bf16 programs' products here, and why.
    public var bf16Line: String {
        switch bf16Path {
        case "amx": "bf16 products: AMX-BF16 tiles (LLAMA_ALIGN_AMX=0 puts them on AVX-512 BF16)"
        case "avx512_bf16": "bf16 products: AVX-512 BF16 (vdpbf16ps); not AMX: \(bf16Note)"
        default: "bf16 products: none (no AVX-512 BF16: --bf16 is refused on this CPU)"
        }
    }

    private static func featureNames(_ bits: UInt32) -> [String] {
        (0..<Int(LA_CPU_FEATURE_COUNT)).filter { bits & (1 << UInt32($0)) != 0 }.map { String(cString: la_cpu_feature_name(Int32($0))) }
    }

    private static func string<T>(_ tuple: T) -> String {
        withUnsafeBytes(of: tuple) { raw in
            let bytes = raw.prefix { $0 != 0 }
            return String(decoding: bytes, as: UTF8.self)
        }
    }
}
