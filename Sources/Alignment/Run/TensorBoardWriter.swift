import Foundation

/// TensorBoard event files (`events.out.tfevents.TIME.HOST`): TFRecord framing — little-endian
/// UInt64 length, masked CRC-32C of the length, the record, masked CRC-32C of the record — around
/// `Event` protobufs: a first `file_version: "brain.Event:2"`, then per logged step one Event with
/// `wall_time`, `step` and a `Summary` of `simple_value` scalars. The protobuf is encoded here.
public final class TensorBoardWriter: @unchecked Sendable {
    public let path: String
    private let handle: FileHandle

    /// Creates a new event file in `logDir` (created if needed).
    public init(logDir: String) throws {
        do { try FileManager.default.createDirectory(atPath: logDir, withIntermediateDirectories: true) } catch {
            throw RuntimeIOError("\(logDir): logging_dir cannot be created (\(error.localizedDescription))")
        }
        let host = ProcessInfo.processInfo.hostName.split(separator: ".").first.map(String.init) ?? "localhost"
        path = (logDir as NSString).appendingPathComponent("events.out.tfevents.\(Int(Date().timeIntervalSince1970)).\(host).\(getpid())")
        guard FileManager.default.createFile(atPath: path, contents: nil), let h = FileHandle(forWritingAtPath: path) else {
            throw RuntimeIOError("\(path): cannot create the TensorBoard event file")
        }
        handle = h
        var first = Protobuf()
        first.double(1, Date().timeIntervalSince1970)
        first.bytes(3, Array("brain.Event:2".utf8))
        write(first.bytes)
    }

    deinit { try? handle.close() }

    /// One Event at `step` holding `scalars` (tag → value; non-finite values are skipped).
    public func add(step: Int, scalars: [(tag: String, value: Double)]) {
        var summary = Protobuf()
        for (tag, value) in scalars where value.isFinite {
            var v = Protobuf()
            v.bytes(1, Array(tag.utf8))    // Summary.Value.tag
            v.float(2, Float(value))       // Summary.Value.simple_value
            summary.bytes(1, v.bytes)      // Summary.value
        }
        var event = Protobuf()
        event.double(1, Date().timeIntervalSince1970)   // wall_time
        event.varint(2, UInt64(max(step, 0)))           // step
        event.bytes(5, summary.bytes)                   // summary
        write(event.bytes)
    }

    /// Hugging Face's tags for a `metrics.jsonl` line: `eval_x` → `eval/x`, others `train/x`; `step` is the step.
    public func add(metrics: [String: Double]) {
        guard let step = metrics["step"] else { return }
        let scalars = metrics.keys.sorted().filter { $0 != "step" }.map { k in
            (tag: k.hasPrefix("eval_") ? "eval/" + k.dropFirst(5) : "train/" + k, value: metrics[k] ?? .nan)
        }
        add(step: Int(step), scalars: scalars)
    }

    private func write(_ record: [UInt8]) {
        handle.write(Data(Self.frame(record)))
        try? handle.synchronize()
    }

    /// A TFRecord: length, masked CRC of the length, data, masked CRC of the data.
    static func frame(_ data: [UInt8]) -> [UInt8] {
        let length = withUnsafeBytes(of: UInt64(data.count).littleEndian, Array.init)
        func le(_ v: UInt32) -> [UInt8] { withUnsafeBytes(of: v.littleEndian, Array.init) }
        return length + le(CRC32C.masked(length)) + data + le(CRC32C.masked(data))
    }
}

/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), and TFRecord's mask of it.
public enum CRC32C {
    static let table: [UInt32] = (0..<256).map { i in
        var c = UInt32(i)
        for _ in 0..<8 { c = c & 1 != 0 ? (c >> 1) ^ 0x82F6_3B78 : c >> 1 }
        return c
    }

    public static func checksum(_ bytes: [UInt8]) -> UInt32 {
        var c: UInt32 = 0xFFFF_FFFF
        for b in bytes { c = table[Int((c ^ UInt32(b)) & 0xFF)] ^ (c >> 8) }
        return c ^ 0xFFFF_FFFF
    }

    /// `((crc >> 15) | (crc << 17)) + 0xa282ead8`.
    public static func masked(_ bytes: [UInt8]) -> UInt32 {
        let c = checksum(bytes)
        return ((c >> 15) | (c << 17)) &+ 0xA282_EAD8
    }
}

/// A protobuf message being written: fields in the order added.
struct Protobuf {
    var bytes: [UInt8] = []

    mutating func rawVarint(_ v: UInt64) {
        var v = v
        while v >= 0x80 { bytes.append(UInt8(v & 0x7F) | 0x80); v >>= 7 }
        bytes.append(UInt8(v))
    }

    mutating func varint(_ field: Int, _ v: UInt64) { rawVarint(UInt64(field << 3 | 0)); rawVarint(v) }
    mutating func double(_ field: Int, _ v: Double) {
        rawVarint(UInt64(field << 3 | 1)); bytes += withUnsafeBytes(of: v.bitPattern.littleEndian, Array.init)
    }
    mutating func bytes(_ field: Int, _ b: [UInt8]) { rawVarint(UInt64(field << 3 | 2)); rawVarint(UInt64(b.count)); bytes += b }
    mutating func float(_ field: Int, _ v: Float) {
        rawVarint(UInt64(field << 3 | 5)); bytes += withUnsafeBytes(of: v.bitPattern.littleEndian, Array.init)
    }
}
