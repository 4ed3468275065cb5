//go:build linux

package pods

import (
	"fmt"
	"os"
	"sort"

	"github.com/podns/podns/sandbox/nsutil"
	"github.com/podns/podns/sandbox/state"
)

// NSRow is one process of a pod with its namespace identities.
type NSRow struct {
	Pod       string            `json:"pod"`
	PodID     string            `json:"podId"`
	Container string            `json:"container"` // "(holder)" for the holder
	PID       int               `json:"pid"`
	Comm      string            `json:"comm"`
	NS        map[string]uint64 `json:"ns"`
	// Shared marks kinds this process shares with another process of its
	// pod; Host marks kinds that are the host's own (podnsctl's).
	Shared map[string]bool `json:"shared"`
	Host   map[string]bool `json:"host"`
}

// NSReport is the `podnsctl ns` answer.
type NSReport struct {
	Rows []NSRow `json:"rows"`
	// CrossPod lists every non-host namespace seen in more than one pod;
	// empty is the proof that pods share nothing.
	CrossPod []string `json:"crossPod"`
}

// Namespaces reads /proc/PID/ns of every process of the given pods (all
// when refs is empty).
func (r *Runtime) Namespaces(refs []string) (*NSReport, error) {
	var pods []*state.Pod
	if len(refs) == 0 {
		all, err := r.Store.Pods()
		if err != nil {
			return nil, err
		}
		pods = all
	} else {
		for _, ref := range refs {
			p, err := r.ResolvePod(ref)
			if err != nil {
				return nil, err
			}
			pods = append(pods, p)
		}
	}
	host := nsutil.ProcNS(os.Getpid())
	rep := &NSReport{CrossPod: []string{}}
	owners := map[string]map[uint64]map[string]bool{} // kind → inode → pod names
	for _, p := range pods {
		var rows []NSRow
		if HolderAlive(p) {
			rows = append(rows, NSRow{Container: "(holder)", PID: p.Holder})
		}
		ctrs, _ := r.Store.Containers(p.ID)
		for _, c := range ctrs {
			if phase, _ := r.ContainerStatus(c); phase != state.PhaseRunning {
				continue
			}
			pids := nsutil.PidsInNS("mnt", c.MntInode)
			sort.Ints(pids)
			for _, pid := range pids {
				if st, err := nsutil.ProcStart(pid); err == nil && st >= c.PIDStart {
					rows = append(rows, NSRow{Container: c.Name, PID: pid})
				}
			}
		}
		count := map[string]map[uint64]int{}
		for i := range rows {
			rows[i].Pod, rows[i].PodID = p.Namespace+"/"+p.Name, p.ID
			rows[i].Comm = nsutil.Comm(rows[i].PID)
			rows[i].NS = nsutil.ProcNS(rows[i].PID)
			for k, ino := range rows[i].NS {
				if count[k] == nil {
					count[k] = map[uint64]int{}
				}
				count[k][ino]++
			}
		}
		for i := range rows {
			rows[i].Shared, rows[i].Host = map[string]bool{}, map[string]bool{}
			for k, ino := range rows[i].NS {
				rows[i].Shared[k] = count[k][ino] > 1
				rows[i].Host[k] = host[k] == ino
				if !rows[i].Host[k] {
					if owners[k] == nil {
						owners[k] = map[uint64]map[string]bool{}
					}
					if owners[k][ino] == nil {
						owners[k][ino] = map[string]bool{}
					}
					owners[k][ino][p.ID] = true
				}
			}
		}
		rep.Rows = append(rep.Rows, rows...)
	}
	for _, k := range nsutil.Kinds {
		for ino, ps := range owners[k] {
			if len(ps) > 1 {
				var ids []string
				for id := range ps {
					ids = append(ids, id)
				}
				sort.Strings(ids)
				rep.CrossPod = append(rep.CrossPod, fmt.Sprintf("%s:[%d] in pods %v", k, ino, ids))
			}
		}
	}
	return rep, nil
}
