import Dispatch
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Watches the Swift concurrency pool of the test process from a thread of its own, and says when it stalls.
///
/// Swift Testing runs the suite's tests as tasks on the cooperative pool, which has one thread per core: two on
/// the machines CI uses. A test that blocks one of those threads (a synchronous libpq call, `waitpid`, a lock held
/// across I/O) halves the pool for every other test; two of them stop it, and every other test's timers, status
/// updates and reads wait. The watchdog enqueues an empty task every 250 ms; when one has not run after
/// `TAILGATE_POOL_WATCHDOG_SECONDS` (default 2), it prints `pool-watchdog: stalled …` with the stall's length and,
/// with `TAILGATE_POOL_WATCHDOG_STACKS=DIR`, writes every thread's stack (gdb) to a file in DIR, so that a flaky
/// timing is traced to the code that blocked the pool instead of being retried.
public enum PoolWatchdog {
    /// Starts the watchdog once per process (called by the test helpers most tests use); `false` when
    /// `TAILGATE_POOL_WATCHDOG=0`.
    @discardableResult
    public static func start() -> Bool { started }

    private static let started: Bool = {
        let environment = ProcessInfo.processInfo.environment
        guard environment["TAILGATE_POOL_WATCHDOG"] != "0" else { return false }
        let threshold = Double(environment["TAILGATE_POOL_WATCHDOG_SECONDS"] ?? "") ?? 2
        let stacks = environment["TAILGATE_POOL_WATCHDOG_STACKS"]
        let thread = Thread { watch(threshold: threshold, stacksDirectory: stacks) }
        thread.name = "tailgate.pool-watchdog"
        thread.start()
        return true
    }()

    private static func watch(threshold: Double, stacksDirectory: String?) {
        var stalls = 0
        while true {
            Thread.sleep(forTimeInterval: 0.25)
            let ran = DispatchSemaphore(value: 0)
            let enqueued = DispatchTime.now()
            Task.detached { ran.signal() }
            guard ran.wait(timeout: enqueued + threshold) == .timedOut else { continue }
            stalls += 1
            let threads = poolThreads()
            var stackNote = ""
            if let stacksDirectory {
                let path = "\(stacksDirectory)/pool-stall-\(getpid())-\(stalls).txt"
                stackNote = " stacks=\(path)"
                dumpStacks(to: path)
            }
            ran.wait()
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - enqueued.uptimeNanoseconds) / 1e9
            print("pool-watchdog: stalled the cooperative pool ran no task for \(String(format: "%.1f", seconds)) s;"
                  + " its threads at \(threshold) s: \(threads)\(stackNote)")
        }
    }

    /// The pool's threads as the kernel sees them, without stopping the process: `R` (running or waiting for a
    /// core: the machine is busy) or `S`/`D` with the system call they wait in (a test blocked the pool), e.g.
    /// `S futex_do_wait syscall=202`.
    private static func poolThreads() -> String {
        let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task")) ?? []
        let described: [String] = tasks.compactMap { task in
            let directory = "/proc/self/task/\(task)"
            guard let name = try? String(contentsOfFile: directory + "/comm", encoding: .utf8),
                  name.contains("default-qos") && !name.contains("overcommit"),
                  let stat = try? String(contentsOfFile: directory + "/stat", encoding: .utf8),
                  let afterName = stat.range(of: ") ") else { return nil }
            let state = stat[afterName.upperBound...].prefix(1)
            guard state != "R" else { return "R" }
            let channel = (try? String(contentsOfFile: directory + "/wchan", encoding: .utf8)) ?? "?"
            let call = (try? String(contentsOfFile: directory + "/syscall", encoding: .utf8))?.split(separator: " ").first ?? "?"
            return "\(state) \(channel) syscall=\(call)"
        }
        return described.isEmpty ? "none found" : described.joined(separator: ", ")
    }

    /// Every thread's stack, by gdb attached to this process (it stops the process for a moment).
    private static func dumpStacks(to path: String) {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/gdb") else { return }
        _ = try? ChildProcess("/usr/bin/gdb", ["-p", "\(getpid())", "-batch", "-nx", "-ex", "set pagination off",
                                               "-ex", "thread apply all bt 25"], outputPath: path).wait()
    }
}
