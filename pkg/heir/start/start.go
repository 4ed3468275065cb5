// Package start, imported for its side effect, starts the process's heir
// (pkg/heir) from its package init, which Go runs on the main thread. The
// binaries whose exit a runtime waits for import it: podns, podns-ipam
// and podnsctl.
package start

import "github.com/podns/podns/pkg/heir"

func init() { heir.Start() }
