// Package install copies the CNI binaries shipped in the agent's image into
// the node's CNI bin dir, each by temp file + rename so a runtime exec'ing a
// plugin at that moment sees the old or the new file, never half of one.
package install

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/podns/podns/pkg/atomicfile"
)

// Binaries installs every regular executable file of src into dst and
// returns the names it changed; identical files are left alone.
func Binaries(src, dst string) ([]string, error) {
	ents, err := os.ReadDir(src)
	if err != nil {
		return nil, fmt.Errorf("read CNI binaries from %s: %w", src, err)
	}
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return nil, fmt.Errorf("create %s: %w", dst, err)
	}
	var changed []string
	found := false
	for _, e := range ents {
		info, err := e.Info()
		if err != nil {
			return changed, fmt.Errorf("stat %s: %w", filepath.Join(src, e.Name()), err)
		}
		if !info.Mode().IsRegular() || info.Mode()&0o111 == 0 {
			continue
		}
		found = true
		ok, err := copyIfChanged(filepath.Join(src, e.Name()), filepath.Join(dst, e.Name()))
		if err != nil {
			return changed, err
		}
		if ok {
			changed = append(changed, e.Name())
		}
	}
	if !found {
		return nil, fmt.Errorf("no executable files in %s", src)
	}
	return changed, nil
}

func copyIfChanged(src, dst string) (bool, error) {
	data, err := os.ReadFile(src)
	if err != nil {
		return false, fmt.Errorf("read %s: %w", src, err)
	}
	// Rename over the old binary: a plugin being exec'd meanwhile is never torn.
	return atomicfile.WriteIfChanged(dst, data, 0o755)
}
