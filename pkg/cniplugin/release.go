//go:build linux

package cniplugin

import (
	"sync/atomic"

	"github.com/podns/podns/pkg/masq"
)

var exitsAfterVerb atomic.Bool

// ExitsAfterVerb tells the package that this process exits as soon as a
// verb returns (the plugin binary, podnsctl). The verb's nftables socket is
// then released by the kernel after the exit instead of by the verb:
// releasing any nftables socket waits until the kernel has finished
// destroying whatever anyone deleted from nftables a moment earlier (an RCU
// grace period, milliseconds), so an ADD right after another pod's DEL
// waited for that DEL (docs/benchmarks.md, Round 7). A long-lived caller
// does not call it: its sockets would stay open until it exits.
func ExitsAfterVerb() { exitsAfterVerb.Store(true) }

// closeMasq closes a verb's nftables socket, detached when the process
// exits after the verb.
func closeMasq(c *masq.Conn) {
	if exitsAfterVerb.Load() {
		c.CloseDetached()
		return
	}
	c.Close()
}
