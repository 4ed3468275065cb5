//go:build linux

package cniplugin

import (
	"fmt"
	"io"
	"sync"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/podns/podns/pkg/finisher"
	"github.com/podns/podns/pkg/netconf"
)

// Invoke runs ADD or DEL of the podns plugin in the calling process, for a
// runtime that ships with podns (podnsctl) and would otherwise exec the
// binary: a process start and exit fewer per verb, as podns itself calls
// podns-ipam in-process. It checks what skel checks around an exec'd
// plugin's verb (the config's cniVersion against the supported ones,
// CNI_NETNS not being the caller's own netns) and fails the way the
// plugin's error JSON would, with a *types.Error. ADD's result is written
// to out. Nothing is read from the environment: args carries the CNI
// variables (Path is CNI_PATH, where an exec'd IPAM is found).
//
// DEL hands the kernel's slow part of the delete to a child that is this
// process's own binary re-executed (pkg/finisher), so the caller's main
// must run finisher.Main for finisher.Arg, as plugins/podns does; a caller
// that cannot passes a child it started another way with DelWith.
func Invoke(verb string, args *skel.CmdArgs, out io.Writer) error {
	var run func() error
	switch verb {
	case "ADD":
		run = func() error { return add(args, out) }
	case "DEL":
		run = func() error {
			fin, finErr := takeWarm()
			return del(args, fin, finErr)
		}
	default:
		return types.NewError(types.ErrInvalidEnvironmentVariables, fmt.Sprintf("podns in-process: verb %q is not run in-process", verb), "")
	}
	confVersion, err := (&version.ConfigDecoder{}).Decode(args.StdinData)
	if err != nil {
		return types.NewError(types.ErrDecodingFailure, err.Error(), "")
	}
	if verr := (&version.Reconciler{}).Check(confVersion, version.PluginSupports(netconf.SupportedVersions...)); verr != nil {
		return types.NewError(types.ErrIncompatibleCNIVersion, "incompatible CNI versions", verr.Details())
	}
	// skel checks this after the verb ran. ADD refuses it before it makes
	// anything (openPod); DEL, which does not open the netns, is checked
	// here so it cannot tear down the caller's own links either.
	if verb == "DEL" {
		if err := refuseOwnNetNS(args); err != nil {
			return err
		}
	}
	return toCNI(run())
}

// warm is the finisher WarmDel started, until a DEL takes it.
var warm struct {
	sync.Mutex
	started chan warmChild // nil: none started or already taken
}

type warmChild struct {
	fin *finisher.Child
	err error
}

// WarmDel starts DEL's finisher in the background now, for a caller about
// to run an in-process DEL (podnsctl rmp): the child's process start then
// overlaps the caller's work up to the DEL rather than the DEL's own, as
// plugins/podns starts it before skel reads anything. The child runs from
// exe, the podns plugin binary (finisher.StartExe), or from this process's
// own binary when exe is empty. The next Invoke("DEL") takes it; one that
// no DEL takes exits with this process.
func WarmDel(exe string) {
	if exe == "" {
		exe = "/proc/self/exe"
	}
	warm.Lock()
	defer warm.Unlock()
	if warm.started != nil {
		return
	}
	ch := make(chan warmChild, 1)
	warm.started = ch
	go func() {
		fin, err := finisher.StartExe(exe)
		ch <- warmChild{fin, err}
	}()
}

// takeWarm hands WarmDel's finisher (or why there is none) to one DEL;
// without one, DEL starts its own (nil, nil).
func takeWarm() (*finisher.Child, error) {
	warm.Lock()
	ch := warm.started
	warm.started = nil
	warm.Unlock()
	if ch == nil {
		return nil, nil
	}
	w := <-ch
	return w.fin, w.err
}
