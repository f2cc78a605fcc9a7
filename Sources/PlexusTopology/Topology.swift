/// Topology files: parsing, validation with compiler-style diagnostics, graph facts, generators, diffs.
public enum Topology {}
