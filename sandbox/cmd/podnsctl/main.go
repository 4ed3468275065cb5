//go:build linux

// Command podnsctl runs Kubernetes-style pods on one machine with
// podns-sandbox holding their namespaces and CNI wiring their network.
package main

import (
	"os"

	"github.com/podns/podns/sandbox/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
