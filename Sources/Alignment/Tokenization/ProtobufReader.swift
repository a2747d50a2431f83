import Foundation

/// A minimal protobuf wire-format reader: enough to walk SentencePiece's ModelProto.
struct ProtobufReader {
    enum Value {
        case varint(UInt64)
        case fixed64(UInt64)
        case bytes(ArraySlice<UInt8>)
        case fixed32(UInt32)
    }

    let data: ArraySlice<UInt8>
    var offset: Int
    let path: String

    init(_ data: ArraySlice<UInt8>, path: String) {
        self.data = data
        offset = data.startIndex
        self.path = path
    }

    var atEnd: Bool { offset >= data.endIndex }

    private func fail(_ what: String) -> TokenizerError {
        TokenizerError(path, "malformed protobuf at byte \(offset): \(what)")
    }

    mutating func varint() throws -> UInt64 {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            guard offset < data.endIndex else { throw fail("truncated varint") }
            let b = data[offset]
            offset += 1
            result |= UInt64(b & 0x7F) << shift
            if b & 0x80 == 0 { return result }
            shift += 7
            if shift >= 64 { throw fail("varint too long") }
        }
    }

    /// The next field number and value, or nil at the end.
    mutating func field() throws -> (number: Int, value: Value)? {
        if atEnd { return nil }
        let key = try varint()
        let number = Int(key >> 3)
        switch key & 7 {
        case 0: return (number, .varint(try varint()))
        case 1:
            guard offset + 8 <= data.endIndex else { throw fail("truncated 64-bit field \(number)") }
            var v: UInt64 = 0
            for k in 0..<8 { v |= UInt64(data[offset + k]) << (8 * UInt64(k)) }
            offset += 8
            return (number, .fixed64(v))
        case 2:
            let n = try varint()
            guard n <= UInt64(data.endIndex - offset) else { throw fail("field \(number) runs past the end") }
            let slice = data[offset..<(offset + Int(n))]
            offset += Int(n)
            return (number, .bytes(slice))
        case 5:
            guard offset + 4 <= data.endIndex else { throw fail("truncated 32-bit field \(number)") }
            var v: UInt32 = 0
            for k in 0..<4 { v |= UInt32(data[offset + k]) << (8 * UInt32(k)) }
            offset += 4
            return (number, .fixed32(v))
        default:
            throw fail("unsupported wire type \(key & 7) for field \(number)")
        }
    }
}
