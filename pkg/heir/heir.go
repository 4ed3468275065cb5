// Package heir lets a short-lived process's exit be reported before the
// kernel has freed its memory.
//
// A process's exit is reported to its parent (wait returns, its pipes
// reach EOF) only after its last thread has torn down the address space:
// every page table entry of the binary's and the heap's pages unmapped and
// freed. For a CNI plugin that is ~8% of its CPU and part of every ADD's
// latency: the runtime waits for the exit. An heir is a child process that
// shares the address space (clone with CLONE_VM, as vfork does) and holds
// nothing else: while it lives, the exiting process only drops its
// reference, and the teardown happens when the heir exits, right after.
//
// The heir is a few instructions of assembly on a stack of its own that
// run only system calls: it closes every descriptor but the read end of a
// pipe whose write end the parent holds close-on-exec, and waits on it. The
// parent's exit (or exec) closes the write end; the heir's read returns and
// it exits. It never touches memory, runs no Go code and has every signal
// blocked, so sharing the parent's memory cannot disturb the parent. If
// anything fails, there is no heir and the process exits as before.
package heir

// ExitStatus is the heir's exit status, so that a subreaper that adopts
// heirs (a test, a runtime) can tell them from other orphans.
const ExitStatus = 113
