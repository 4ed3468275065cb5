//go:build linux

package ipamcall

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/podns/podns/pkg/cnienv"
)

// find looks typ up in cniPath (CNI_PATH), as the spec says a delegate is
// found.
func find(typ, cniPath string, code uint) (string, error) {
	if typ == "" || strings.ContainsAny(typ, "/\x00") || typ == "." || typ == ".." {
		return "", types.NewError(code, fmt.Sprintf("ipam plugin %q: not a plugin name", typ), "")
	}
	paths := filepath.SplitList(cniPath)
	for _, dir := range paths {
		if dir == "" {
			continue
		}
		p := filepath.Join(dir, typ)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0 {
			return p, nil
		}
	}
	return "", types.NewError(code, fmt.Sprintf("ipam plugin %q: not found in CNI_PATH %v", typ, paths), "looked in CNI_PATH")
}

// run execs the plugin with CNI_COMMAND=verb, the other CNI variables of
// args, and the network config on stdin. A failing plugin's error
// JSON comes back as a *types.Error with its own code.
func run(ctx context.Context, typ, verb string, args *skel.CmdArgs, findCode uint) ([]byte, error) {
	path, err := find(typ, args.Path, findCode)
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, path)
	cmd.Env = cnienv.For(verb, args)
	cmd.Stdin = bytes.NewReader(args.StdinData)
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = os.Stderr
	err = cmd.Run()
	if err == nil {
		return stdout.Bytes(), nil
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return nil, fmt.Errorf("exec %s: %w", path, err)
	}
	te := &types.Error{}
	if jerr := json.Unmarshal(stdout.Bytes(), te); jerr != nil || (te.Code == 0 && te.Msg == "") {
		return nil, fmt.Errorf("%s %s failed (%v) with output %q", path, verb, err, strings.TrimSpace(stdout.String()))
	}
	return nil, te
}

func execAdd(ctx context.Context, typ string, args *skel.CmdArgs) (types.Result, error) {
	out, err := run(ctx, typ, "ADD", args, types.ErrInvalidNetworkConfig)
	if err != nil {
		return nil, err
	}
	// The result speaks its own cniVersion; a plugin that leaves it out
	// answers in the config's.
	var v struct {
		CNIVersion string `json:"cniVersion"`
	}
	if err := json.Unmarshal(out, &v); err != nil {
		return nil, types.NewError(types.ErrDecodingFailure, fmt.Sprintf("ipam %s result: %v", typ, err), "")
	}
	if v.CNIVersion == "" {
		if err := json.Unmarshal(args.StdinData, &v); err != nil {
			return nil, types.NewError(types.ErrDecodingFailure, fmt.Sprintf("ipam %s result has no cniVersion: %v", typ, err), "")
		}
	}
	r, err := version.NewResult(v.CNIVersion, out)
	if err != nil {
		return nil, types.NewError(types.ErrDecodingFailure, fmt.Sprintf("ipam %s result: %v", typ, err), "")
	}
	return r, nil
}

func execNoResult(ctx context.Context, typ, verb string, args *skel.CmdArgs, findCode uint) error {
	_, err := run(ctx, typ, verb, args, findCode)
	return err
}
