/// Delta codecs, zstd, the signed delta envelope and replay windows.
public enum Codec {}
