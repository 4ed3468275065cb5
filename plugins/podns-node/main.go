//go:build linux

// Command podns-node is the podns node agent (run as a DaemonSet): it writes
// this node's CNI conflist from its pod CIDRs, routes every other node's pod
// CIDR to that node and masquerades pod traffic leaving the cluster.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/podns/podns/pkg/node/agent"
	"github.com/podns/podns/pkg/node/install"
	"github.com/podns/podns/pkg/node/routes"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "podns-node:", err)
		os.Exit(1)
	}
}

func run() error {
	var (
		cfg          agent.Config
		clusterCIDRs string
		installCNI   bool
		installOnly  bool
		binSrc       string
		binDir       string
		logLevel     string
	)
	fs := flag.NewFlagSet("podns-node", flag.ContinueOnError)
	fs.StringVar(&cfg.NodeName, "node-name", os.Getenv("NODE_NAME"), "this node's name (default $NODE_NAME)")
	fs.StringVar(&cfg.Kubeconfig, "kubeconfig", os.Getenv("KUBECONFIG"), "kubeconfig file; empty uses the in-cluster service account")
	fs.StringVar(&cfg.CNIConfDir, "cni-conf-dir", "/etc/cni/net.d", "CNI configuration directory")
	fs.StringVar(&cfg.ConfFile, "cni-conf-file", "10-podns.conflist", "conflist file name inside --cni-conf-dir")
	fs.StringVar(&cfg.NetworkName, "network-name", "podns", "CNI network name")
	fs.StringVar(&cfg.CNIVersion, "cni-version", "1.1.0", "cniVersion of the conflist")
	fs.StringVar(&cfg.PluginType, "cni-type", "podns", "main plugin type in the conflist")
	fs.StringVar(&cfg.IPAMType, "ipam-type", "podns-ipam", "IPAM plugin type in the conflist")
	fs.StringVar(&cfg.Bridge, "bridge", "podns0", "bridge name in the conflist")
	fs.BoolVar(&cfg.PortMap, "portmap", true, "chain the portmap plugin")
	fs.StringVar(&cfg.IPAMDataDir, "ipam-data-dir", "", "IPAM dataDir in the conflist (empty: the IPAM's default)")
	fs.StringVar(&cfg.Uplink, "uplink", "", "uplink interface whose MTU pods get (default: the link holding the node's InternalIP)")
	fs.IntVar(&cfg.MTU, "mtu", 0, "pod MTU; 0 takes the uplink's")
	fs.StringVar(&clusterCIDRs, "cluster-cidrs", "", "comma-separated cluster pod CIDRs not to masquerade to (every node's podCIDRs are always included)")
	fs.IntVar(&cfg.RouteProtocol, "route-protocol", routes.DefaultProtocol, "route protocol number marking the agent's routes")
	fs.BoolVar(&cfg.Masquerade, "masquerade", true, "masquerade pod traffic leaving the cluster (nftables table inet podns-node)")
	fs.BoolVar(&cfg.Forwarding, "enable-forwarding", true, "enable IPv4/IPv6 forwarding for the pod CIDR families")
	fs.DurationVar(&cfg.Resync, "resync", 30*time.Second, "period of a full reconcile besides Node events")
	fs.StringVar(&cfg.ListenAddr, "listen", "127.0.0.1:9099", "address of /healthz and /metrics; empty disables")
	fs.BoolVar(&installCNI, "install-cni", false, "copy the CNI binaries of --cni-bin-source into --cni-bin-dir first")
	fs.BoolVar(&installOnly, "install-only", false, "with --install-cni: exit after installing")
	fs.StringVar(&binSrc, "cni-bin-source", "/opt/podns/bin", "directory of the CNI binaries shipped with the agent")
	fs.StringVar(&binDir, "cni-bin-dir", "/opt/cni/bin", "CNI binary directory of the node")
	fs.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	if err := fs.Parse(os.Args[1:]); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(logLevel)); err != nil {
		return fmt.Errorf("--log-level %q: %w", logLevel, err)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))
	for _, s := range strings.Split(clusterCIDRs, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return fmt.Errorf("--cluster-cidrs: %w", err)
		}
		cfg.ClusterCIDRs = append(cfg.ClusterCIDRs, p.Masked())
	}
	if installCNI {
		changed, err := install.Binaries(binSrc, binDir)
		if err != nil {
			return err
		}
		log.Info("installed CNI binaries", "from", binSrc, "to", binDir, "changed", changed)
		if installOnly {
			return nil
		}
	} else if installOnly {
		return fmt.Errorf("--install-only needs --install-cni")
	}
	a, err := agent.New(cfg, log)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	log.Info("podns-node starting", "node", cfg.NodeName)
	return a.Run(ctx)
}
