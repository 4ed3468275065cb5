//go:build linux

package main

import (
	"bytes"
	"os/exec"
	"path/filepath"
	"time"
)

// Floor is the cost of merely starting a program, exec'd the way a runtime
// execs a plugin: what no ADD can go below.
type Floor struct {
	Name string `json:"name"`
	Stat *Stat  `json:"stat"`
}

// measureFloors times /bin/true and each plugin's VERSION command,
// interleaved, so ADD and DEL can be read against the process-start floor.
func (b *Bench) measureFloors(samples int) {
	type prog struct {
		name string
		path string
		env  []string
	}
	progs := []prog{{name: "/bin/true", path: "/bin/true"}}
	seen := map[string]bool{}
	for _, impl := range append(append([]Impl{}, b.cfg.impls.bridge...), b.cfg.impls.ipam...) {
		p := filepath.Join(impl.Dir, impl.Main)
		if seen[p] {
			continue
		}
		seen[p] = true
		progs = append(progs, prog{name: impl.Main + " VERSION (" + impl.Side + ")", path: p, env: []string{"CNI_COMMAND=VERSION"}})
	}
	ser := make([]series, len(progs))
	stdin := []byte(`{"cniVersion":"1.0.0"}`)
	for i := 0; i < samples && !b.stopped(); i++ {
		for j, p := range progs {
			c := exec.Command(p.path)
			c.Env = p.env
			c.Stdin = bytes.NewReader(stdin)
			t0 := time.Now()
			err := c.Run()
			ser[j].add(time.Since(t0), err)
		}
	}
	for j, p := range progs {
		b.report.Floors = append(b.report.Floors, Floor{Name: p.name, Stat: ser[j].stat()})
	}
}
