/// Conversions between `Float` and the 16-bit formats safetensors files use: IEEE 754
/// binary16 ("F16") and bfloat16 ("BF16"). Conversions to 16 bits round to nearest, ties
/// to even; infinities and NaNs are kept (NaNs stay quiet NaNs); subnormals are exact.
public enum HalfFloat {
    /// The value of the binary16 bit pattern `bits`.
    @inlinable
    public static func floatFromF16(_ bits: UInt16) -> Float {
        let sign = UInt32(bits & 0x8000) << 16
        let exponent = UInt32(bits >> 10) & 0x1F
        let mantissa = UInt32(bits & 0x03FF)
        if exponent == 0x1F {  // infinity or NaN: widen the payload
            return Float(bitPattern: sign | 0x7F80_0000 | (mantissa << 13))
        }
        if exponent == 0 {  // zero or subnormal: mantissa × 2^-24, exact in Float
            let magnitude = Float(mantissa) * 0x1.0p-24
            return sign != 0 ? -magnitude : magnitude
        }
        return Float(bitPattern: sign | ((exponent + 112) << 23) | (mantissa << 13))
    }

    /// The binary16 bit pattern nearest to `value` (overflow gives infinity).
    public static func f16FromFloat(_ value: Float) -> UInt16 {
        let x = value.bitPattern
        let sign = UInt16((x >> 16) & 0x8000)
        let exponent = Int((x >> 23) & 0xFF)
        let mantissa = x & 0x007F_FFFF
        if exponent == 0xFF {
            return mantissa == 0 ? sign | 0x7C00 : sign | 0x7E00 | UInt16(truncatingIfNeeded: mantissa >> 13)
        }
        let e = exponent - 127 + 15
        if e >= 0x1F { return sign | 0x7C00 }
        if e <= 0 {
            // Result is subnormal or zero: shift the 24-bit significand into units of 2^-24.
            let shift = 14 - e
            guard shift <= 24 else { return sign }  // below half the smallest subnormal
            let significand = mantissa | 0x0080_0000
            var h = significand >> UInt32(shift)
            let rest = significand & ((1 << UInt32(shift)) - 1)
            let half = UInt32(1) << UInt32(shift - 1)
            if rest > half || (rest == half && h & 1 == 1) { h += 1 }
            return sign | UInt16(h)
        }
        var h = (UInt32(e) << 10) | (mantissa >> 13)
        let rest = mantissa & 0x1FFF
        if rest > 0x1000 || (rest == 0x1000 && h & 1 == 1) { h += 1 }  // a carry may reach infinity, as it should
        return sign | UInt16(h)
    }

    /// The value of the bfloat16 bit pattern `bits`.
    @inlinable
    public static func floatFromBF16(_ bits: UInt16) -> Float {
        Float(bitPattern: UInt32(bits) << 16)
    }

    /// The bfloat16 bit pattern nearest to `value`.
    public static func bf16FromFloat(_ value: Float) -> UInt16 {
        let x = value.bitPattern
        if value.isNaN { return UInt16(x >> 16) | 0x0040 }
        let rounded = x &+ 0x7FFF &+ ((x >> 16) & 1)
        return UInt16(rounded >> 16)
    }
}
