//go:build linux

package ipamcall

import (
	"net"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"

	"github.com/podns/podns/pkg/ipam"
)

// podnsIPAM serves ipam.type "podns-ipam" from pkg/ipam in this process.
type podnsIPAM struct{}

func (podnsIPAM) Add(a *skel.CmdArgs) (types.Result, bool, error) {
	r, fresh, err := ipam.Allocate(a)
	if err != nil {
		return nil, false, err
	}
	return r, fresh, nil
}

func (podnsIPAM) Addrs(a *skel.CmdArgs) ([]net.IP, error) {
	as, err := ipam.Addrs(a)
	out := make([]net.IP, 0, len(as))
	for _, x := range as {
		out = append(out, net.IP(x.AsSlice()))
	}
	return out, err
}

func (podnsIPAM) Del(a *skel.CmdArgs) error    { return ipam.CmdDel(a) }
func (podnsIPAM) Check(a *skel.CmdArgs) error  { return ipam.CmdCheck(a) }
func (podnsIPAM) Status(a *skel.CmdArgs) error { return ipam.CmdStatus(a) }
func (podnsIPAM) GC(a *skel.CmdArgs) error     { return ipam.CmdGC(a) }

func init() { inProcess = podnsIPAM{} }
