// Package cnienv builds the environment a CNI plugin is exec'd with: the
// caller's own, with the CNI variables taken from the call's arguments.
package cnienv

import (
	"os"
	"strings"

	"github.com/containernetworking/cni/pkg/skel"
)

// vars are the variables that come from the arguments, never from the
// caller's environment: a runtime has none of them (or stale ones), and a
// plugin running in-process in a runtime (cniplugin.Invoke) neither.
var vars = []string{"CNI_COMMAND=", "CNI_CONTAINERID=", "CNI_NETNS=", "CNI_IFNAME=", "CNI_ARGS=", "CNI_PATH=", "CNI_NETNS_OVERRIDE="}

// For returns the environment for running verb with args: this process's
// environment without any CNI variable, then CNI_COMMAND=verb and the
// variables of args (CNI_NETNS_OVERRIDE only when set).
func For(verb string, args *skel.CmdArgs) []string {
	own := os.Environ()
	env := make([]string, 0, len(own)+len(vars))
	for _, kv := range own {
		if !isCNIVar(kv) {
			env = append(env, kv)
		}
	}
	env = append(env, "CNI_COMMAND="+verb, "CNI_CONTAINERID="+args.ContainerID, "CNI_NETNS="+args.Netns,
		"CNI_IFNAME="+args.IfName, "CNI_ARGS="+args.Args, "CNI_PATH="+args.Path)
	if args.NetnsOverride != "" {
		env = append(env, "CNI_NETNS_OVERRIDE="+args.NetnsOverride)
	}
	return env
}

func isCNIVar(kv string) bool {
	for _, v := range vars {
		if strings.HasPrefix(kv, v) {
			return true
		}
	}
	return false
}
