public enum TensorGraphPlaceholder {}
