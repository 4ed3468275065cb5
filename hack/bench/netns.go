//go:build linux

package main

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"github.com/vishvananda/netns"
)

const netnsRunDir = "/var/run/netns"

// newNetns creates a named, bind-mounted network namespace like `ip netns add`
// and returns its path. The calling thread is returned to its own netns.
func newNetns(name string) (string, error) {
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return "", fmt.Errorf("get current netns: %w", err)
	}
	defer orig.Close()
	h, nerr := netns.NewNamed(name)
	if nerr == nil {
		h.Close()
	}
	// NewNamed switches the thread even when it fails half way; a thread that
	// cannot go back stays locked, so the runtime never reuses it.
	if err := netns.Set(orig); err != nil {
		return "", fmt.Errorf("return from netns %s: %w", name, err)
	}
	runtime.UnlockOSThread()
	if nerr != nil {
		return "", fmt.Errorf("create netns %s: %w", name, nerr)
	}
	return filepath.Join(netnsRunDir, name), nil
}

// delNetns unmounts and removes a named netns; a missing one is not an error.
func delNetns(name string) error {
	if _, err := os.Stat(filepath.Join(netnsRunDir, name)); os.IsNotExist(err) {
		return nil
	}
	if err := netns.DeleteNamed(name); err != nil {
		return fmt.Errorf("delete netns %s: %w", name, err)
	}
	return nil
}
