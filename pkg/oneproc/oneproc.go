// Package oneproc, imported for its side effect, runs a short-lived
// program on one P from the start of package initialisation.
//
// Setting GOMAXPROCS in main is too late: the runtime's own start-up
// goroutines wake a second P before any package initialises, and the main
// goroutine usually comes back on it, so every package's init and main
// then allocate from that P's span cache until GOMAXPROCS(1) moves them to
// P0, which starts its own. The pages of both are touched: about 80 more
// page faults and 0.2-0.4 ms more CPU per podns ADD or DEL on this VM
// (docs/benchmark-findings.md, Round 5). This package imports nothing but the
// runtime, so it is among the first packages to initialise, before any
// that allocates (a test checks the order in the built binaries).
package oneproc

import "runtime"

func init() { runtime.GOMAXPROCS(1) }
