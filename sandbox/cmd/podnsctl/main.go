//go:build linux

// Command podnsctl runs Kubernetes-style pods on one machine with
// podns-sandbox holding their namespaces and CNI wiring their network.
package main

import (
	"os"

	"github.com/podns/podns/pkg/finisher"
	_ "github.com/podns/podns/pkg/heir/start" // the exit is reported before the address space is freed
	"github.com/podns/podns/pkg/masq"
	"github.com/podns/podns/sandbox/cli"
)

func main() {
	// A CNI DEL of the podns plugin run in-process re-executes this binary
	// to finish the kernel's slow part of the delete (pkg/finisher).
	if len(os.Args) == 2 && os.Args[1] == finisher.Arg {
		os.Exit(finisher.Main())
	}
	// One command per process: the CNI verbs podnsctl runs in-process
	// (cli's default) are followed by its exit.
	masq.ReleaseAfterExit()
	os.Exit(cli.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
