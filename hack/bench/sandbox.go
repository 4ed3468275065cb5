//go:build linux

package main

// SandboxRow is scenario 5: one runtime's pod create + remove, with the
// memory each pod's holder costs.
type SandboxRow struct {
	Runtime string `json:"runtime"`
	Steps   string `json:"steps"`
	// Target names the side of the ratio: "podnsctl" or "crictl".
	Target string `json:"target"`
	Pods   int    `json:"pods"`
	Stat   *Stat  `json:"stat"`
	Memory string `json:"memory,omitempty"`
}

// scenarioSandbox is filled in once podnsctl and the containerd set-up exist.
func (b *Bench) scenarioSandbox() error {
	b.report.Notes = append(b.report.Notes, "scenario 5 (podnsctl vs containerd) not measured yet.")
	return nil
}
