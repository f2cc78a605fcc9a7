/// The release of this build: what `plexus --version` prints and what a node reports as
/// `plexus_build_info{version=…}`. One constant, so the two never disagree.
public enum PlexusVersion {
    public static let current = "0.1.0"
}
