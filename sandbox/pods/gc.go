//go:build linux

package pods

import (
	"context"
	"fmt"
	"os"

	"github.com/podns/podns/sandbox/nsutil"
	"github.com/podns/podns/sandbox/state"
)

// GC reconciles state with the machine after crashes. A pod that is half
// made (podnsctl died during runp; under the lock "creating" means nobody is
// working on it), whose holder died, or whose pins are gone is torn down and
// removed: processes killed, CNI DEL, pins unmounted, cgroups removed.
// Containers whose process is gone are marked exited and their leftovers
// killed. It returns one line per action.
func (r *Runtime) GC(ctx context.Context) ([]string, error) {
	unlock, err := r.Store.Lock()
	if err != nil {
		return nil, err
	}
	defer unlock()
	ids, err := r.Store.PodIDs()
	if err != nil {
		return nil, err
	}
	var did []string
	for _, id := range ids {
		pod, err := r.Store.LoadPod(id)
		if err != nil {
			// No readable record: only mounts can be there (the record is
			// written before anything else).
			mounts, _ := nsutil.MountsUnder(r.Store.PodDir(id))
			for _, m := range mounts {
				nsutil.Unpin(m)
			}
			if err := os.RemoveAll(r.Store.PodDir(id)); err != nil {
				return did, err
			}
			did = append(did, fmt.Sprintf("removed pod %s: no record", id))
			continue
		}
		why := ""
		switch {
		case pod.Phase == state.PhaseCreating:
			why = "half made"
		case pod.Phase == state.PhaseReady && pod.Mode == ModeHolder && !HolderAlive(pod):
			why = "holder died"
		case pod.Phase == state.PhaseReady && !pinsMounted(pod):
			why = "namespace pins gone"
		}
		if why != "" {
			if err := r.teardown(ctx, pod, false, false); err != nil {
				did = append(did, fmt.Sprintf("pod %s (%s): teardown failed: %v", pod.ID, why, err))
				continue
			}
			if err := r.removeState(pod); err != nil {
				did = append(did, fmt.Sprintf("pod %s (%s): %v", pod.ID, why, err))
				continue
			}
			did = append(did, fmt.Sprintf("removed pod %s (%s/%s): %s", pod.ID, pod.Namespace, pod.Name, why))
			continue
		}
		ctrs, _ := r.Store.Containers(pod.ID)
		for _, c := range ctrs {
			if c.Phase != state.PhaseRunning {
				continue
			}
			if phase, _ := r.ContainerStatus(c); phase == state.PhaseExited {
				r.stopContainer(pod, c)
				did = append(did, fmt.Sprintf("container %s (%s) exited: cleaned up", c.ID, c.Name))
			}
		}
	}
	return did, nil
}

func pinsMounted(p *state.Pod) bool {
	for kind, path := range p.Pins {
		ino, err := nsutil.Inode(path)
		if err != nil || ino != p.NSInodes[kind] {
			return false
		}
	}
	return true
}
