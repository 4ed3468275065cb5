//go:build linux

// Package cli is podnsctl's command line: global flags, one function per
// verb, tables or JSON out, one-line errors.
package cli

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/sys/unix"

	"github.com/podns/podns/pkg/cniplugin"
	"github.com/podns/podns/sandbox/cni"
	"github.com/podns/podns/sandbox/container"
	"github.com/podns/podns/sandbox/nsutil"
	"github.com/podns/podns/sandbox/pods"
	"github.com/podns/podns/sandbox/spec"
	runtimeapi "github.com/podns/podns/sandbox/spec/cri"
	"github.com/podns/podns/sandbox/state"
)

const usage = `usage: podnsctl [global flags] COMMAND [flags] [args]

Commands:
  runp [--mode holder|pinned] POD-CONFIG   create a pod from a CRI pod config (JSON/YAML, - for stdin)
  run [-d] [--name N] [-e K=V] [-w DIR] [--rootfs DIR] POD -- CMD...
                                        run a command as a new container (foreground unless -d)
  create POD CTR-CONFIG                 create a container from a CRI container config
  start CTR                             start a created container (detached)
  pods [-o table|json] [-q]             list pods
  ps [-o table|json] [-q] [POD]         list containers
  inspectp [-o table|json] POD          show a pod
  inspect [-o table|json] CTR           show a container (CTR is POD/NAME or an ID)
  stopp POD...                          stop a pod's containers and holder, CNI DEL
  rmp [-f] [-a] POD...                  stop and remove pods (-f: ignore CNI errors, -a: all pods)
  exec CTR -- CMD...                    run a command in a running container
  ns [-o table|json] [POD...]           namespace identities of every process of the pod(s)
  gc                                    tear down dead or half-made pods
  version

Global flags:
`

type app struct {
	rt          *pods.Runtime
	in          io.Reader
	out, errOut io.Writer
}

// Main runs podnsctl and returns its exit code.
func Main(args []string, in io.Reader, out, errOut io.Writer) int {
	gf := flag.NewFlagSet("podnsctl", flag.ContinueOnError)
	gf.SetOutput(errOut)
	stateDir := gf.String("state-dir", envOr("PODNS_STATE_DIR", state.DefaultRoot), "state directory (env PODNS_STATE_DIR)")
	confDir := gf.String("cni-conf-dir", envOr("PODNS_CNI_CONF_DIR", cni.DefaultConfDir), "CNI network config directory")
	binDir := gf.String("cni-bin-dir", envOr("PODNS_CNI_BIN_DIR", cni.DefaultBinDir), "CNI plugin directories, colon-separated")
	cacheDir := gf.String("cni-cache-dir", os.Getenv("PODNS_CNI_CACHE_DIR"), "libcni result cache (default STATE-DIR/cni-cache)")
	sandboxBin := gf.String("sandbox-bin", os.Getenv("PODNS_SANDBOX_BIN"), "podns-sandbox binary (default: next to podnsctl, then PATH)")
	stopTimeout := gf.Duration("stop-timeout", 5*time.Second, "grace period between SIGTERM and SIGKILL")
	inProcess := gf.Bool("cni-in-process", envOr("PODNS_CNI_IN_PROCESS", "1") != "0", "run the podns plugin's ADD and DEL in podnsctl instead of exec'ing it (env PODNS_CNI_IN_PROCESS=0: exec)")
	gf.Usage = func() { fmt.Fprint(errOut, usage); gf.PrintDefaults() }
	if err := gf.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if gf.NArg() == 0 {
		gf.Usage()
		return 2
	}
	verb, rest := gf.Arg(0), gf.Args()[1:]
	if verb == "version" {
		fmt.Fprintln(out, "podnsctl version 0.1.0")
		return 0
	}
	store, err := state.Open(*stateDir)
	if err != nil {
		fmt.Fprintf(errOut, "podnsctl: %v\n", err)
		return 1
	}
	if *cacheDir == "" {
		*cacheDir = cni.DefaultCacheDir(store.Root)
	}
	a := &app{
		rt: &pods.Runtime{
			Store: store, CNIConfDir: *confDir, CNIBinDirs: filepath.SplitList(*binDir),
			CNICacheDir: *cacheDir, SandboxBin: findSandbox(*sandboxBin), StopTimeout: *stopTimeout,
		},
		in: in, out: out, errOut: errOut,
	}
	if *inProcess {
		// podnsctl ships with podns: its plugin runs here, two process
		// starts fewer per pod, as podns runs podns-ipam in-process.
		a.rt.CNIInProcess = map[string]cni.InProcessPlugin{"podns": cniplugin.Invoke}
		a.rt.WarmCNIDel = func() {
			// The installed plugin binary starts faster than podnsctl
			// would (its package init is lighter); without it, podnsctl
			// plays the finisher itself.
			exe, _ := a.rt.CNIPluginPath("podns")
			cniplugin.WarmDel(exe)
		}
	}
	cmds := map[string]func([]string) (int, error){
		"runp": a.runp, "run": a.run, "create": a.create, "start": a.start,
		"pods": a.pods, "ps": a.ps, "inspectp": a.inspectp, "inspect": a.inspect,
		"stopp": a.stopp, "rmp": a.rmp, "exec": a.exec, "ns": a.ns, "gc": a.gc,
	}
	f, ok := cmds[verb]
	if !ok {
		fmt.Fprintf(errOut, "podnsctl: unknown command %q (see podnsctl -h)\n", verb)
		return 2
	}
	code, err := f(rest)
	if err != nil {
		fmt.Fprintf(errOut, "podnsctl %s: %s\n", verb, oneLine(err))
		if code == 0 {
			code = 1
		}
	}
	return code
}

func oneLine(err error) string { return strings.Join(strings.Fields(err.Error()), " ") }

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func findSandbox(flagVal string) string {
	if flagVal != "" {
		return flagVal
	}
	if exe, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(exe), "podns-sandbox")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath("podns-sandbox"); err == nil {
		return p
	}
	return "podns-sandbox"
}

func newFlags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return fs
}

func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%v", err)
	}
	return nil
}

type multi []string

func (m *multi) String() string     { return strings.Join(*m, ",") }
func (m *multi) Set(s string) error { *m = append(*m, s); return nil }

func (a *app) runp(args []string) (int, error) {
	nsutil.WarmExec() // its first exec is a CNI plugin or the holder
	// The pod's namespaces are unshared on a locked thread that is then
	// ended; keeping this (main) goroutine on the main thread keeps that
	// thread, which Go cannot end and /proc/PID/ns shows, out of them.
	// runp pays for Go's template thread with its first lock anyway.
	runtime.LockOSThread()
	// Most pods own their network, ipc and uts namespaces: the kernel makes
	// them while the config is read and the record written.
	early := nsutil.StartUnshare(pods.PodKinds())
	defer early.Close()
	fs := newFlags("runp")
	mode := fs.String("mode", os.Getenv("PODNS_MODE"), "holder or pinned")
	if err := parse(fs, args); err != nil {
		return 2, err
	}
	if fs.NArg() != 1 {
		return 2, errors.New("usage: podnsctl runp [--mode holder|pinned] POD-CONFIG")
	}
	data, err := spec.ReadFile(fs.Arg(0))
	if err != nil {
		return 1, err
	}
	p, err := spec.ParsePod(data)
	if err != nil {
		return 1, err
	}
	pod, err := a.rt.RunPod(context.Background(), p, *mode, early)
	if err != nil {
		return 1, err
	}
	fmt.Fprintln(a.out, pod.ID)
	return 0, nil
}

func (a *app) create(args []string) (int, error) {
	fs := newFlags("create")
	if err := parse(fs, args); err != nil {
		return 2, err
	}
	if fs.NArg() != 2 {
		return 2, errors.New("usage: podnsctl create POD CTR-CONFIG")
	}
	data, err := spec.ReadFile(fs.Arg(1))
	if err != nil {
		return 1, err
	}
	c, err := spec.ParseContainer(data)
	if err != nil {
		return 1, err
	}
	_, ctr, err := a.rt.CreateContainer(context.Background(), fs.Arg(0), c)
	if err != nil {
		return 1, err
	}
	fmt.Fprintln(a.out, ctr.ID)
	return 0, nil
}

func (a *app) start(args []string) (int, error) {
	fs := newFlags("start")
	if err := parse(fs, args); err != nil {
		return 2, err
	}
	if fs.NArg() != 1 {
		return 2, errors.New("usage: podnsctl start CTR")
	}
	_, ctr, _, err := a.rt.StartContainer(context.Background(), fs.Arg(0), nil)
	if err != nil {
		return 1, err
	}
	fmt.Fprintln(a.out, ctr.ID)
	return 0, nil
}

func (a *app) run(args []string) (int, error) {
	fs := newFlags("run")
	detach := fs.Bool("d", false, "detach")
	name := fs.String("name", "", "container name")
	wd := fs.String("w", "", "working directory")
	rootfs := fs.String("rootfs", "", "root filesystem directory")
	var envs multi
	fs.Var(&envs, "e", "K=V")
	if err := parse(fs, args); err != nil {
		return 2, err
	}
	if fs.NArg() < 2 {
		return 2, errors.New("usage: podnsctl run [-d] [--name N] [-e K=V] [-w DIR] [--rootfs DIR] POD -- CMD...")
	}
	podRef, cmdArgs := fs.Arg(0), fs.Args()[1:]
	if cmdArgs[0] == "--" {
		cmdArgs = cmdArgs[1:]
	}
	if len(cmdArgs) == 0 {
		return 2, errors.New("no command given")
	}
	if *name == "" {
		b := make([]byte, 4)
		rand.Read(b)
		*name = "c-" + hex.EncodeToString(b)
	}
	cfg := &runtimeapi.ContainerConfig{
		Metadata:   &runtimeapi.ContainerMetadata{Name: *name},
		Command:    cmdArgs,
		WorkingDir: *wd,
	}
	for _, e := range envs {
		k, v, _ := strings.Cut(e, "=")
		cfg.Envs = append(cfg.Envs, &runtimeapi.KeyValue{Key: k, Value: []byte(v)})
	}
	if *rootfs != "" {
		cfg.Annotations = map[string]string{pods.RootfsAnnotation: *rootfs}
	}
	if err := spec.ValidateContainer(cfg); err != nil {
		return 1, err
	}
	_, ctr, err := a.rt.CreateContainer(context.Background(), podRef, &spec.Container{Config: cfg})
	if err != nil {
		return 1, err
	}
	var stdio *pods.Stdio
	if !*detach {
		stdio = &pods.Stdio{In: a.in, Out: a.out, Err: a.errOut}
	}
	// Catch signals before the shim exists, to hand them on.
	sigs := make(chan os.Signal, 4)
	if !*detach {
		signal.Notify(sigs, unix.SIGINT, unix.SIGTERM, unix.SIGHUP)
		defer signal.Stop(sigs)
	}
	_, ctr, shim, err := a.rt.StartContainer(context.Background(), ctr.ID, stdio)
	if err != nil {
		return 1, err
	}
	if *detach {
		fmt.Fprintln(a.out, ctr.ID)
		return 0, nil
	}
	go func() {
		for s := range sigs {
			shim.Process.Signal(s)
		}
	}()
	err = shim.Wait()
	if code, ok := container.ExitStatus(err); ok {
		return code, nil
	}
	return 1, err
}

func (a *app) exec(args []string) (int, error) {
	if len(args) < 2 {
		return 2, errors.New("usage: podnsctl exec CTR -- CMD...")
	}
	ref, cmdArgs := args[0], args[1:]
	if cmdArgs[0] == "--" {
		cmdArgs = cmdArgs[1:]
	}
	return a.rt.Exec(ref, cmdArgs, &pods.Stdio{In: a.in, Out: a.out, Err: a.errOut})
}

func (a *app) stopp(args []string) (int, error) {
	nsutil.WarmExec() // its first exec may be a CNI DEL's plugin
	if len(args) == 0 {
		return 2, errors.New("usage: podnsctl stopp POD...")
	}
	for _, ref := range args {
		p, err := a.rt.StopPod(context.Background(), ref)
		if err != nil {
			return 1, err
		}
		fmt.Fprintf(a.out, "stopped pod %s\n", p.ID)
	}
	return 0, nil
}

func (a *app) rmp(args []string) (int, error) {
	nsutil.WarmExec() // its first exec may be a CNI DEL's plugin
	fs := newFlags("rmp")
	force := fs.Bool("f", false, "remove even if CNI DEL fails")
	all := fs.Bool("a", false, "remove every pod")
	if err := parse(fs, args); err != nil {
		return 2, err
	}
	refs := fs.Args()
	if *all {
		ps, err := a.rt.Store.Pods()
		if err != nil {
			return 1, err
		}
		for _, p := range ps {
			refs = append(refs, p.ID)
		}
	} else if len(refs) == 0 {
		return 2, errors.New("usage: podnsctl rmp [-f] [-a] POD...")
	}
	for _, ref := range refs {
		p, err := a.rt.RemovePod(context.Background(), ref, *force)
		if err != nil {
			return 1, err
		}
		fmt.Fprintf(a.out, "removed pod %s\n", p.ID)
	}
	return 0, nil
}

func (a *app) gc(args []string) (int, error) {
	if len(args) != 0 {
		return 2, errors.New("usage: podnsctl gc")
	}
	did, err := a.rt.GC(context.Background())
	for _, d := range did {
		fmt.Fprintln(a.out, d)
	}
	return 0, err
}

func outputFlag(fs *flag.FlagSet) *string {
	return fs.String("o", "table", "table or json")
}

func checkOutput(o string) error {
	if o != "table" && o != "json" {
		return fmt.Errorf("unknown output format %q (want table or json)", o)
	}
	return nil
}

func (a *app) writeJSON(v any) error {
	enc := json.NewEncoder(a.out)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func short(id string) string {
	if len(id) > 13 {
		return id[:13]
	}
	return id
}

func (a *app) pods(args []string) (int, error) {
	fs := newFlags("pods")
	o := outputFlag(fs)
	quiet := fs.Bool("q", false, "IDs only")
	if err := parse(fs, args); err != nil {
		return 2, err
	}
	if err := checkOutput(*o); err != nil {
		return 2, err
	}
	ps, err := a.rt.Store.Pods()
	if err != nil {
		return 1, err
	}
	if *quiet {
		for _, p := range ps {
			fmt.Fprintln(a.out, p.ID)
		}
		return 0, nil
	}
	if *o == "json" {
		type row struct {
			*state.Pod
			State string `json:"state"`
		}
		rows := []row{}
		for _, p := range ps {
			rows = append(rows, row{p, pods.PodState(p)})
		}
		return 0, a.writeJSON(rows)
	}
	tw := tabwriter.NewWriter(a.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "POD ID\tNAME\tNAMESPACE\tSTATE\tMODE\tNET\tPID\tIPC\tIP\tCREATED")
	for _, p := range ps {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", short(p.ID), p.Name, p.Namespace, pods.PodState(p),
			p.Mode, p.Network, p.PID, p.IPC, strings.Join(p.IPs, ","), p.CreatedAt.Format(time.RFC3339))
	}
	return 0, tw.Flush()
}

type ctrView struct {
	*state.Container
	State string `json:"state"`
	Exit  *int   `json:"exit,omitempty"`
	Pod   string `json:"pod"`
}

func (a *app) ps(args []string) (int, error) {
	fs := newFlags("ps")
	o := outputFlag(fs)
	quiet := fs.Bool("q", false, "IDs only")
	if err := parse(fs, args); err != nil {
		return 2, err
	}
	if err := checkOutput(*o); err != nil {
		return 2, err
	}
	var ps []*state.Pod
	if fs.NArg() > 0 {
		for _, ref := range fs.Args() {
			p, err := a.rt.ResolvePod(ref)
			if err != nil {
				return 1, err
			}
			ps = append(ps, p)
		}
	} else {
		var err error
		if ps, err = a.rt.Store.Pods(); err != nil {
			return 1, err
		}
	}
	views := []ctrView{}
	for _, p := range ps {
		cs, _ := a.rt.Store.Containers(p.ID)
		for _, c := range cs {
			phase, code := a.rt.ContainerStatus(c)
			views = append(views, ctrView{c, string(phase), code, p.Namespace + "/" + p.Name})
		}
	}
	if *quiet {
		for _, v := range views {
			fmt.Fprintln(a.out, v.ID)
		}
		return 0, nil
	}
	if *o == "json" {
		return 0, a.writeJSON(views)
	}
	tw := tabwriter.NewWriter(a.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CONTAINER ID\tNAME\tPOD\tSTATE\tEXIT\tPID\tPIDNS\tCOMMAND")
	for _, v := range views {
		exit := ""
		if v.Exit != nil {
			exit = fmt.Sprint(*v.Exit)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", short(v.ID), v.Name, v.Pod, v.State, exit, v.PID, v.PIDMode, strings.Join(v.Command, " "))
	}
	return 0, tw.Flush()
}

func (a *app) inspectp(args []string) (int, error) {
	fs := newFlags("inspectp")
	o := outputFlag(fs)
	if err := parse(fs, args); err != nil {
		return 2, err
	}
	if err := checkOutput(*o); err != nil {
		return 2, err
	}
	if fs.NArg() != 1 {
		return 2, errors.New("usage: podnsctl inspectp [-o table|json] POD")
	}
	p, err := a.rt.ResolvePod(fs.Arg(0))
	if err != nil {
		return 1, err
	}
	if *o == "json" {
		return 0, a.writeJSON(struct {
			*state.Pod
			State string `json:"state"`
		}{p, pods.PodState(p)})
	}
	tw := tabwriter.NewWriter(a.out, 0, 4, 2, ' ', 0)
	kv := func(k string, v any) { fmt.Fprintf(tw, "%s:\t%v\n", k, v) }
	kv("ID", p.ID)
	kv("Name", p.Namespace+"/"+p.Name)
	kv("State", pods.PodState(p))
	kv("Mode", p.Mode)
	kv("Namespaces", fmt.Sprintf("network=%s pid=%s ipc=%s", p.Network, p.PID, p.IPC))
	kv("Hostname", p.Hostname)
	kv("Holder PID", p.Holder)
	kv("IPs", strings.Join(p.IPs, ", "))
	kv("CNI network", p.CNINetwork)
	for _, k := range nsutil.Kinds {
		if ino, ok := p.NSInodes[k]; ok {
			kv("ns "+k, fmt.Sprintf("%s:[%d] %s", k, ino, p.Pins[k]))
		}
	}
	kv("Created", p.CreatedAt.Format(time.RFC3339))
	return 0, tw.Flush()
}

func (a *app) inspect(args []string) (int, error) {
	fs := newFlags("inspect")
	o := outputFlag(fs)
	if err := parse(fs, args); err != nil {
		return 2, err
	}
	if err := checkOutput(*o); err != nil {
		return 2, err
	}
	if fs.NArg() != 1 {
		return 2, errors.New("usage: podnsctl inspect [-o table|json] CTR")
	}
	p, c, err := a.rt.ResolveContainer(fs.Arg(0))
	if err != nil {
		return 1, err
	}
	phase, code := a.rt.ContainerStatus(c)
	v := ctrView{c, string(phase), code, p.Namespace + "/" + p.Name}
	if *o == "json" {
		return 0, a.writeJSON(v)
	}
	tw := tabwriter.NewWriter(a.out, 0, 4, 2, ' ', 0)
	kv := func(k string, v any) { fmt.Fprintf(tw, "%s:\t%v\n", k, v) }
	kv("ID", c.ID)
	kv("Name", c.Name)
	kv("Pod", v.Pod+" ("+p.ID+")")
	kv("State", v.State)
	if code != nil {
		kv("Exit code", *code)
	}
	kv("PID", c.PID)
	kv("PID namespace", c.PIDMode)
	kv("Command", strings.Join(c.Command, " "))
	kv("Cgroup", c.Cgroup)
	kv("Log", c.LogPath)
	return 0, tw.Flush()
}

func (a *app) ns(args []string) (int, error) {
	fs := newFlags("ns")
	o := outputFlag(fs)
	if err := parse(fs, args); err != nil {
		return 2, err
	}
	if err := checkOutput(*o); err != nil {
		return 2, err
	}
	rep, err := a.rt.Namespaces(fs.Args())
	if err != nil {
		return 1, err
	}
	if *o == "json" {
		return 0, a.writeJSON(rep)
	}
	tw := tabwriter.NewWriter(a.out, 0, 4, 2, ' ', 0)
	fmt.Fprint(tw, "POD\tCONTAINER\tPID\tCOMM")
	for _, k := range nsutil.Kinds {
		fmt.Fprintf(tw, "\t%s", strings.ToUpper(k))
	}
	fmt.Fprintln(tw)
	for _, r := range rep.Rows {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s", r.Pod, r.Container, r.PID, r.Comm)
		for _, k := range nsutil.Kinds {
			cell := fmt.Sprint(r.NS[k])
			switch {
			case r.Host[k]:
				cell = "host"
			case r.Shared[k]:
				cell += "*"
			}
			fmt.Fprintf(tw, "\t%s", cell)
		}
		fmt.Fprintln(tw)
	}
	if err := tw.Flush(); err != nil {
		return 1, err
	}
	fmt.Fprintln(a.out, "(* = shared with another process of the same pod; host = the node's own namespace)")
	if len(rep.CrossPod) == 0 {
		fmt.Fprintln(a.out, "across pods: no namespace is shared (host namespaces aside)")
		return 0, nil
	}
	for _, s := range rep.CrossPod {
		fmt.Fprintf(a.out, "SHARED ACROSS PODS: %s\n", s)
	}
	return 3, nil
}
