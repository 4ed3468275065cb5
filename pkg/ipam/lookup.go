//go:build linux

package ipam

import (
	"net/netip"
	"path/filepath"

	"github.com/containernetworking/cni/pkg/skel"

	"github.com/podns/podns/pkg/ipam/store"
)

// Addrs returns the addresses (ContainerID, IfName) holds, changing
// nothing: the podns plugin's DEL reads them to remove the pod's
// masquerade elements before it releases the addresses. A network without
// a store holds none.
func Addrs(args *skel.CmdArgs) ([]netip.Addr, error) {
	c, att, err := request(args, false)
	if err != nil {
		return nil, err
	}
	if !exists(filepath.Join(c.Dir, store.DBFile)) {
		return nil, nil
	}
	s, err := open(c)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	var out []netip.Addr
	err = s.View(func(tx *store.Tx) error {
		out = tx.Addrs(att)
		if len(out) == 0 && att.IfName != "" {
			// Adopted from an old host-local that recorded no ifname.
			out = tx.Addrs(store.Attachment{ContainerID: att.ContainerID})
		}
		return nil
	})
	return out, storeErr("look up "+att.String(), err)
}
