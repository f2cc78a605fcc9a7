import Testing

/// The suites whose tests wait synchronously while `plexus` processes run (`Background.wait`,
/// `usleep`), and so hold their thread for seconds to minutes. They run one at a time: on this
/// 2-core machine the package's tests share a cooperative pool of 2 threads, and two of these
/// suites side by side starved every async test of the package (the transport suites' waits
/// timed out in a full run while passing alone). The async suites (`HostilePeerTests`,
/// `HostileLinkTests`, `PartitionTests`) await instead and stay outside.
@Suite(.serialized) enum ProcessSuites {}
