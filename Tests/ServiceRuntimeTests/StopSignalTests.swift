import Dispatch
import Foundation
import ServiceRuntime
import Synchronization
import Testing

@Suite struct StopSignalTests {
    @Test func handlersRunOnceAtTheRequestAndAtOnceWhenRegisteredAfterIt() {
        let stop = StopSignal()
        let calls = Atomic<Int>(0)
        let key = stop.onStop { calls.add(1, ordering: .relaxed) }
        let removed = stop.onStop { calls.add(100, ordering: .relaxed) }
        stop.remove(removed)
        #expect(key != nil && !stop.isRequested)
        stop.request()
        stop.request()
        #expect(stop.isRequested && calls.load(ordering: .relaxed) == 1)
        #expect(stop.onStop { calls.add(10, ordering: .relaxed) } == nil)
        #expect(calls.load(ordering: .relaxed) == 11)
    }

    @Test func anAsyncSleepEndsAtTheRequest() async {
        let stop = StopSignal()
        let start = ContinuousClock.now
        async let slept: Void = stop.sleep(for: .seconds(60))
        try? await Task.sleep(for: .milliseconds(50))
        stop.request()
        await slept
        // Bounded, not timed: the request ended the 60 s sleep (a full parallel run has kept this task from running
        // for over 10 s on two busy cores, so anything short of the delay itself proves it).
        #expect(ContinuousClock.now - start < .seconds(50), "the sleep ran its whole delay: the request did not end it")
        let short = ContinuousClock.now
        await StopSignal().sleep(for: .milliseconds(20))
        #expect(ContinuousClock.now - short >= .milliseconds(20))
    }

    @Test func aBlockingWaitEndsAtTheRequestAndSaysSo() {
        let stop = StopSignal()
        #expect(!stop.wait(for: .milliseconds(10)), "no request: the whole delay, then false")
        DispatchQueue.global().asyncAfter(deadline: .now() + .milliseconds(50)) { stop.request() }
        let start = ContinuousClock.now
        #expect(stop.wait(for: .seconds(60)))
        #expect(ContinuousClock.now - start < .seconds(50), "the wait ran its whole delay: the request did not end it")
        #expect(stop.wait(for: .seconds(60)), "a later wait returns at once")
    }

    /// Once `remove` returns, its handler is not running and never will: the consumer closes the Kafka consumer the
    /// handler wakes right after.
    @Test func removeWaitsForAHandlerInProgress() {
        let stop = StopSignal()
        let inHandler = DispatchSemaphore(value: 0)
        let finished = Atomic<Bool>(false)
        let key = stop.onStop {
            inHandler.signal()
            Thread.sleep(forTimeInterval: 0.2)
            finished.store(true, ordering: .releasing)
        }
        DispatchQueue.global().async { stop.request() }
        inHandler.wait()
        stop.remove(key)
        let finishedBeforeRemoveReturned = finished.load(ordering: .acquiring)
        #expect(finishedBeforeRemoveReturned)
    }
}
