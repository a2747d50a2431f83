import Foundation

extension Safetensors {
    /// Writes `tensors` to `path` as safetensors, atomically (temporary file, then rename).
    ///
    /// Tensors are stored in sorted name order, all as `dtype` (F32 unless told otherwise);
    /// the JSON header is padded with spaces so the data section starts 8-byte aligned.
    /// `metadata` becomes the `__metadata__` map when not empty.
    public static func write(_ tensors: [String: Tensor], to path: String, dtype: DType = .f32,
                             metadata: [String: String] = [:]) throws {
        try BinaryIO.writeAtomically(encode(tensors, path: path, dtype: dtype, metadata: metadata), to: path)
    }

    /// The complete file contents for `tensors` (see `write`); `path` is used in errors only.
    static func encode(_ tensors: [String: Tensor], path: String, dtype: DType, metadata: [String: String]) throws -> Data {
        let names = tensors.keys.sorted()
        var entries: [String] = []
        if !metadata.isEmpty {
            let pairs = metadata.keys.sorted().map { "\(jsonString($0)):\(jsonString(metadata[$0] ?? ""))" }
            entries.append("\"__metadata__\":{\(pairs.joined(separator: ","))}")
        }
        var offset = 0
        for name in names {
            guard let t = tensors[name] else { continue }
            guard name != "__metadata__" else { throw CheckpointError(path, "'__metadata__' cannot be a tensor name") }
            guard let count = BinaryIO.elementCount(t.shape), count == t.values.count else {
                throw CheckpointError(path, "tensor '\(name)' has \(t.values.count) values but shape \(t.shape)")
            }
            let end = offset + count * dtype.byteSize
            let shape = t.shape.map(String.init).joined(separator: ",")
            entries.append("\(jsonString(name)):{\"dtype\":\"\(dtype.rawValue)\",\"shape\":[\(shape)],\"data_offsets\":[\(offset),\(end)]}")
            offset = end
        }
        var header = Array("{\(entries.joined(separator: ","))}".utf8)
        while header.count % 8 != 0 { header.append(UInt8(ascii: " ")) }

        var data = Data()
        data.reserveCapacity(8 + header.count + offset)
        BinaryIO.append(UInt64(header.count), to: &data)
        data.append(contentsOf: header)
        for name in names {
            guard let values = tensors[name]?.values else { continue }
            switch dtype {
            case .f32: BinaryIO.append(values, to: &data)
            case .f16: BinaryIO.append(values.map(HalfFloat.f16FromFloat), to: &data)
            case .bf16: BinaryIO.append(values.map(HalfFloat.bf16FromFloat), to: &data)
            }
        }
        return data
    }

    /// `s` as a JSON string literal.
    static func jsonString(_ s: String) -> String {
        var out = "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}
