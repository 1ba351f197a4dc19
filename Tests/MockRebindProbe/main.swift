import Foundation
import RDKafka
import Synchronization
import TestSupport

// Takes a mock broker down and up `rounds` times while another thread spawns child processes without pause, then
// exits 0 once both the rounds and as many spawns are done. librdkafka 2.0.2 aborts the process (signal 6) when a
// broker going down cannot bind its port again, which a child being spawned at that moment causes (see
// `KafkaMockCluster.listenerGate`). A process of its own, so that an abort fails one test instead of the suite.
let rounds = CommandLine.arguments.dropFirst().first.flatMap { Int($0) } ?? 200
let cluster = try KafkaMockCluster(brokers: 1, log: { _ in })
let done = Atomic<Bool>(false)
let spawned = Atomic<Int>(0)
let spawner = Thread {
    let output = NSTemporaryDirectory() + "mock-rebind-\(getpid()).log"
    defer { unlink(output) }
    while !done.load(ordering: .acquiring) {
        guard let child = try? ChildProcess("/bin/true", [], outputPath: output) else { continue }
        _ = child.wait()
        spawned.add(1, ordering: .relaxed)
    }
}
spawner.start()
// The gate is not fair: a pause between rounds lets the spawner in, so that spawns and broker changes interleave.
var round = 0
while round < rounds || spawned.load(ordering: .relaxed) < rounds {
    try cluster.setBrokerDown(1)
    try cluster.setBrokerUp(1)
    round += 1
    usleep(2_000)
}
done.store(true, ordering: .releasing)
print("\(round) rounds down and up, \(spawned.load(ordering: .relaxed)) children spawned meanwhile")
cluster.close()
