//go:build linux

// Command podns-sandbox is the pod's namespace holder. With no arguments it
// behaves like the Kubernetes pause binary, so it can be a pause image's only
// file. podnsctl also runs it as "hold" (a pod holder with set-up steps and a
// readiness pipe), "shim" and "init" (the container start steps).
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"

	_ "github.com/podns/podns/pkg/oneproc"
	"github.com/podns/podns/sandbox/container"
	"github.com/podns/podns/sandbox/holder"
)

var version = "0.1.0"

func init() {
	// The init step unshares its cgroup namespace and execs on this thread.
	// Only that step: the first lock also starts Go's template thread, one
	// thread and ~0.3 ms more for every holder start.
	if len(os.Args) > 1 && os.Args[1] == "init" {
		runtime.LockOSThread()
	}
}

type multi []string

func (m *multi) String() string     { return fmt.Sprint(*m) }
func (m *multi) Set(s string) error { *m = append(*m, s); return nil }

func main() {
	args := os.Args[1:]
	if len(args) == 0 {
		lean()
		if os.Getpid() != 1 {
			fmt.Fprintln(os.Stderr, "podns-sandbox: warning: not PID 1, orphaned processes will not be reaped here")
		}
		holder.Run(holder.Options{ReadyFD: -1})
	}
	switch args[0] {
	case "-v", "--version", "version":
		fmt.Printf("podns-sandbox version %s\n", version)
		os.Exit(0)
	case "hold":
		lean()
		fs := flag.NewFlagSet("hold", flag.ContinueOnError)
		hostname := fs.String("hostname", "", "host name to set in the pod's UTS namespace")
		ready := fs.Int("ready-fd", -1, "fd to write the readiness byte to, then close")
		loopback := fs.Bool("loopback", false, "set lo up (the holder owns the pod's network namespace)")
		fs.String("pod", "", "pod ID, so a crashed podnsctl's holder can be found by its command line")
		var sysctls multi
		fs.Var(&sysctls, "sysctl", "name=value to set inside the pod (repeatable)")
		if err := fs.Parse(args[1:]); err != nil || fs.NArg() != 0 {
			holder.Fail(holder.ExitUsage, "usage: podns-sandbox hold [--pod ID] [--hostname H] [--sysctl k=v]... [--loopback] [--ready-fd N]")
		}
		holder.Run(holder.Options{Hostname: *hostname, Sysctls: sysctls, Loopback: *loopback, ReadyFD: *ready})
	case "shim":
		container.Shim()
	case "init":
		container.Init()
	default:
		holder.Fail(holder.ExitUsage, "unknown argument %q (usage: podns-sandbox [-v])", args[0])
	}
}

// lean trims the holder's footprint: a low GC target keeps the heap near its
// tiny live size. (Every mode runs on one P, from the first package init:
// pkg/oneproc. The holder, the shim and the init step each have one thing
// to do, and one P means fewer threads and pages.)
func lean() {
	debug.SetGCPercent(20)
}
