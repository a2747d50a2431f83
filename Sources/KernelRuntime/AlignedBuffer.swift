#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A 64-byte aligned, zero-initialised block of memory owned by Swift, or a view of part of
/// one (`init(viewing:floatOffset:floats:)`), which keeps its parent alive.
public final class AlignedBuffer: @unchecked Sendable {
    public let byteCount: Int
    public let raw: UnsafeMutableRawPointer
    /// The buffer a view points into (nil for an owning buffer).
    public let parent: AlignedBuffer?

    public init(bytes: Int) {
        byteCount = max(bytes, 64)
        var p: UnsafeMutableRawPointer?
        if posix_memalign(&p, 64, byteCount) != 0 || p == nil {
            fatalError("out of memory: could not allocate \(byteCount) bytes")
        }
        raw = p.unsafelyUnwrapped
        parent = nil
        memset(raw, 0, byteCount)
    }

    /// `floats` floats of `parent` from float `floatOffset` on, without copying: writes through
    /// either are seen by both. The range must lie inside `parent`.
    public init(viewing parent: AlignedBuffer, floatOffset: Int, floats: Int) {
        precondition(floatOffset >= 0 && floats >= 0 && (floatOffset + floats) * 4 <= parent.byteCount,
                     "a view of \(floats) floats at \(floatOffset) does not fit in \(parent.byteCount) bytes")
        byteCount = floats * 4
        raw = parent.raw + floatOffset * 4
        self.parent = parent
    }

    public convenience init(floats: Int) { self.init(bytes: floats * 4) }

    public convenience init(copying values: [Float]) {
        self.init(floats: values.count)
        values.withUnsafeBytes { raw.copyMemory(from: $0.baseAddress.unsafelyUnwrapped, byteCount: $0.count) }
    }

    public convenience init(copying values: [Int32]) {
        self.init(bytes: values.count * 4)
        values.withUnsafeBytes { raw.copyMemory(from: $0.baseAddress.unsafelyUnwrapped, byteCount: $0.count) }
    }

    deinit { if parent == nil { free(raw) } }

    public var floats: UnsafeMutablePointer<Float> { raw.assumingMemoryBound(to: Float.self) }
    public var ints: UnsafeMutablePointer<Int32> { raw.assumingMemoryBound(to: Int32.self) }

    /// The first `count` floats as an array.
    public func floatArray(_ count: Int) -> [Float] { Array(UnsafeBufferPointer(start: floats, count: count)) }
}
