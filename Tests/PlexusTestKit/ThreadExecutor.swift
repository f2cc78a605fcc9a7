import Foundation

/// A task executor with a thread of its own, for test fixtures that must keep running when the
/// test process's cooperative pool is saturated. Swift Testing runs suites in parallel, and a
/// synchronous test (a simulation, a benchmark-sized computation) holds a pool thread for its
/// whole run: on a 2-core machine two of them starve every other task in the process for as long
/// as they run. A fixture that plays a network peer (``HostilePeer``) must not miss its sessions
/// for that; tasks created with `Task(executorPreference: executor)` run here instead, and so do
/// their child tasks.
///
/// One thread, jobs in arrival order. A job must not block waiting for another job on this
/// executor (async code does not).
public final class ThreadExecutor: TaskExecutor, @unchecked Sendable {
    private let condition = NSCondition()
    private var jobs: [UnownedJob] = []

    public init(name: String) {
        let thread = Thread { [unowned self] in self.loop() }
        thread.name = name
        thread.start()
    }

    public func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        condition.lock()
        jobs.append(job)
        condition.signal()
        condition.unlock()
    }

    private func loop() {
        while true {
            condition.lock()
            while jobs.isEmpty { condition.wait() }
            let job = jobs.removeFirst()
            condition.unlock()
            job.runSynchronously(on: asUnownedTaskExecutor())
        }
    }
}
