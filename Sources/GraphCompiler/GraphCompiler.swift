public enum GraphCompilerPlaceholder {}
